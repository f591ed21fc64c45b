"""Check that the built API reference shows every public name with its docstring.

For each package (or public module) in ``PUBLIC_MODULES``, every name in its ``__all__`` must
have a docstring in the source and appear in the built site (``site/reference/``) as an
mkdocstrings entry whose text holds the start of that docstring. Run after ``mkdocs build``
(``make docs`` does)::

    python tools/check_api_docs.py [--site site] [--root .]

Prints one line per problem and exits 1 if there is any; 0 and a count otherwise.
"""

from __future__ import annotations

import argparse
import functools
import html
import importlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import griffe

# The source folders mkdocstrings reads (mkdocs.yml's handler `paths`), relative to the root.
SEARCH_PATHS = (
    "packages/core/src",
    "packages/streaming/src",
    "packages/media/src",
    "packages/rl/src",
    "packages/cluster/src",
    "apps/ocr/src",
    "apps/video_search/src",
)
TOP_PACKAGES = ("tideflow", "tideflow_ocr", "tideflow_video_search")
# The griffe extension mkdocs.yml loads (docstrings' reStructuredText habits as Markdown), so
# that the docstrings compared here are the ones the site renders.
GRIFFE_EXTENSION = "docs/scripts/griffe_rst.py:RstToMarkdown"

# Every package whose `__all__` is the public API, and the public test kits (STYLE.md: test
# helpers are part of the public API). `tideflow_video_search` exports nothing
# from its `__init__`; its public modules (each with an `__all__`) are listed instead.
PUBLIC_MODULES = (
    "tideflow.core",
    "tideflow.core.checkpoint",
    "tideflow.core.autoscaler",
    "tideflow.core.scheduler",
    "tideflow.core.observability",
    "tideflow.core.testing",
    "tideflow.streaming",
    "tideflow.streaming.testing",
    "tideflow.streaming.connectors",
    "tideflow.streaming.connectors.files",
    "tideflow.streaming.connectors.kafka",
    "tideflow.streaming.connectors.iceberg",
    "tideflow.streaming.connectors.lance",
    "tideflow.streaming.llm",
    "tideflow.streaming.llm.testing",
    "tideflow.media",
    "tideflow.media.testing",
    "tideflow.rl",
    "tideflow.cluster",
    "tideflow_ocr",
    "tideflow_video_search.config",
    "tideflow_video_search.ingest",
    "tideflow_video_search.search",
    "tideflow_video_search.schema",
    "tideflow_video_search.segments",
    "tideflow_video_search.stages",
    "tideflow_video_search.server",
    "tideflow_video_search.samples",
    "tideflow_video_search.evaluate",
    "tideflow_video_search.evaluation",
    "tideflow_video_search.demo",
    "tideflow_video_search.cli",
)

# How much of a docstring's first paragraph must appear in the page (letters and digits).
SNIPPET_CHARS = 48

_HEADING = re.compile(r'<h[1-6] id="([^"]+)" class="doc doc-heading"')
_CONTENTS = '<div class="doc doc-contents'
_TAG = re.compile(r"<[^>]+>")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class Problem:
    """One public name the reference does not show properly."""

    module: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}: {self.reason}"


def _plain(text: str) -> str:
    """Lower-case letters and digits only: markup-free text to compare."""
    return _NOT_ALNUM.sub("", text.lower())


def rendered_entries(site: Path) -> dict[str, str]:
    """Map each mkdocstrings heading id in ``site/reference/`` to its own docstring text.

    The text is what follows the heading's ``doc-contents`` up to the next heading (the
    next object, or the first member of a class), as plain letters and digits.
    """
    entries: dict[str, str] = {}
    pages = sorted((site / "reference").rglob("*.html"))
    if not pages:
        raise SystemExit(f"check_api_docs: no built reference under {site / 'reference'}")
    for page in pages:
        text = page.read_text(encoding="utf-8")
        headings = list(_HEADING.finditer(text))
        for index, match in enumerate(headings):
            end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
            start = text.find(_CONTENTS, match.end(), end)
            body = text[start:end] if start >= 0 else ""
            plain = _plain(html.unescape(_TAG.sub(" ", body)))
            entries[match.group(1)] = entries.get(match.group(1), "") + plain
    return entries


@functools.lru_cache(maxsize=2)
def load_packages(root: Path) -> griffe.GriffeLoader:
    """Load the packages the way mkdocstrings does (static analysis of the sources); once
    per root."""
    loader = griffe.GriffeLoader(
        extensions=griffe.load_extensions(str(root / GRIFFE_EXTENSION)),
        search_paths=[str(root / path) for path in SEARCH_PATHS],
    )
    for package in TOP_PACKAGES:
        loader.load(package)
    loader.resolve_aliases(implicit=False, external=False)
    return loader


def _runtime_path(module: str, name: str) -> str | None:
    """Where a name is defined, by importing it (for lazily exported names)."""
    try:
        value = getattr(importlib.import_module(module), name)
    except Exception:  # a name that does not import is reported as absent
        return None
    defined_in = getattr(value, "__module__", None)
    return f"{defined_in}.{name}" if isinstance(defined_in, str) else None


def _first_paragraph(docstring: str) -> str:
    return docstring.strip().split("\n\n", 1)[0]


@dataclass(frozen=True)
class PublicName:
    """One name of a module's ``__all__``, where it is defined and how the reference may id it."""

    module: str
    name: str
    ids: tuple[str, ...]
    """Heading ids it may have in the reference: ``module.name`` or where it is defined."""
    docstring: str | None
    """Its docstring in the source; ``None`` when the name cannot be found at all."""


def public_names(root: Path, modules: Sequence[str] = PUBLIC_MODULES) -> list[PublicName]:
    """Every public name of ``modules``, resolved the way mkdocstrings resolves it."""
    collection = load_packages(root).modules_collection
    names: list[PublicName] = []
    for module_path in modules:
        module = collection[module_path]
        exports = [e if isinstance(e, str) else e.name for e in (module.exports or [])]
        if not exports:
            names.append(PublicName(module_path, "__all__", (), None))
            continue
        for name in exports:
            member = module.members.get(name)
            target: Any = None
            if member is not None:
                target = member.final_target if member.is_alias else member
            else:
                defined = _runtime_path(module_path, name)
                if defined is not None:
                    try:
                        target = collection[defined]
                    except KeyError:
                        target = None
            if target is None:
                names.append(PublicName(module_path, name, (f"{module_path}.{name}",), None))
                continue
            docstring = target.docstring.value if target.docstring else ""
            ids = (f"{module_path}.{name}", target.path)
            names.append(PublicName(module_path, name, ids, docstring))
    return names


def docstring_problems(names: Sequence[PublicName]) -> list[Problem]:
    """Public names that cannot be found, and those without a docstring in the source."""
    problems = []
    for public in names:
        if public.name == "__all__":
            problems.append(Problem(public.module, "__all__", "missing or empty"))
        elif public.docstring is None:
            problems.append(Problem(public.module, public.name, "cannot be found in the sources"))
        elif not public.docstring.strip():
            problems.append(Problem(public.module, public.name, f"no docstring ({public.ids[-1]})"))
    return problems


def reference_problems(names: Sequence[PublicName], site: Path) -> list[Problem]:
    """Documented public names missing from the built reference, or shown without their
    docstring."""
    entries = rendered_entries(site)
    problems = []
    for public in names:
        if not public.docstring or not public.docstring.strip():
            continue  # reported by docstring_problems
        shown = [entries[i] for i in public.ids if i in entries]
        if not shown:
            reason = f"not in the API reference (ids: {', '.join(public.ids)})"
            problems.append(Problem(public.module, public.name, reason))
            continue
        snippet = _plain(_first_paragraph(public.docstring))[:SNIPPET_CHARS]
        if not any(snippet in text for text in shown):
            problems.append(Problem(public.module, public.name, "shown without its docstring"))
    return problems


def check(
    root: Path, site: Path, modules: Sequence[str] = PUBLIC_MODULES
) -> tuple[list[Problem], int]:
    """Every problem found, and how many public names were checked."""
    names = public_names(root, modules)
    problems = docstring_problems(names) + reference_problems(names, site)
    return problems, len(names)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the problems; exit 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument("--site", type=Path, default=None, help="built site (default ROOT/site)")
    args = parser.parse_args(argv)
    site = args.site if args.site is not None else args.root / "site"
    problems, checked = check(args.root, site)
    out = sys.stdout
    for problem in problems:
        out.write(f"{problem}\n")
    if problems:
        out.write(f"check_api_docs: {len(problems)} of {checked} public names not documented\n")
        return 1
    out.write(f"check_api_docs: {checked} public names, each in the reference with its docstring\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
