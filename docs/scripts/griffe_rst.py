"""A griffe extension for the API reference: docstrings written for Sphinx read as Markdown.

Tideflow's docstrings use reStructuredText habits: doctest blocks (``>>>``), roles
(``:class:`~tideflow.core.checkpoint.CheckpointStore```) and double-backtick literals. Markdown
would turn a doctest into nested block quotes and show the roles as written, so, for the site
only (the sources are untouched), each docstring is rewritten when griffe loads it: a doctest
block becomes a ``pycon`` code block, a role becomes code naming its target's last part (or the
whole path when written without ``~``), and double backticks become single ones. mkdocs.yml
loads it (``extensions:``) and ``tools/check_api_docs.py`` too, so both see the same text.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(?<!`)``([^`\n]+)``(?!`)")
_PROMPT = re.compile(r"^(>>>|\.\.\.)( |$)")


def _role(match: re.Match[str]) -> str:
    target = match.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def _fence_doctests(text: str) -> str:
    """Wrap each top-level doctest block (prompt lines and their output, up to a blank line)
    in a fence; those indented under an ``Examples:`` section are griffe's to parse."""
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        prompt = _PROMPT.match(lines[index])
        if prompt is None or (out and out[-1].lstrip().startswith("```")):
            out.append(lines[index])
            index += 1
            continue
        out.append("```pycon")
        while index < len(lines) and lines[index].strip():
            out.append(lines[index])
            index += 1
        out.append("```")
    return "\n".join(out)


def markdown_docstring(text: str) -> str:
    """The docstring as the site shows it."""
    if ">>>" in text:
        text = _fence_doctests(text)
    return _LITERAL.sub(r"`\1`", _ROLE.sub(_role, text))


class RstToMarkdown(griffe.Extension):
    """Rewrite every loaded docstring with :func:`markdown_docstring`."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Called once per object after its package is loaded."""
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
