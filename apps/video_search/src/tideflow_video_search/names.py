"""The names a query asks about, and whether a hit's text mentions them (see
:mod:`tideflow_video_search.search`, **Names**)."""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata

__all__ = ["NAME_MATCH", "name_coverage", "query_names"]

NAME_MATCH = 0.8
"""A name counts as mentioned by a word this alike (``difflib`` ratio): spelling variants
and recognition slips, not other names."""


_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SENTENCE_END = re.compile(r"[.!?¿¡:;\"“”«»(]\s*$")


@functools.lru_cache(maxsize=1 << 16)
def _plain(word: str) -> str:
    """``word`` lower-cased, without accents or a possessive ``'s``."""
    word = unicodedata.normalize("NFKD", word.casefold())
    word = "".join(c for c in word if not unicodedata.combining(c))
    return re.sub(r"['’]s$", "", word).strip("'’-")


def query_names(query: str) -> list[str]:
    """The names ``query`` asks about: its capitalized words of two letters or more (Latin
    script and the like: Chinese has no capitals) that do not begin a sentence, plain
    (see :func:`_plain`). ``"How many seats has the Wild Rose hotel?"`` → ``["wild", "rose"]``."""
    names = []
    for match in _WORD.finditer(query):
        word = match.group()
        before = query[: match.start()]
        if len(word) < 2 or not word[0].isupper() or not before.strip():
            continue
        if _SENTENCE_END.search(before):
            continue
        plain = _plain(word)
        if len(plain) >= 2 and plain not in names:
            names.append(plain)
    return names


def name_coverage(names: list[str], text: str) -> float:
    """``(1 + names text mentions) / (1 + len(names))``; 1 without names. A name is
    mentioned by a word of ``text`` equal to it, alike to it (:data:`NAME_MATCH`), or
    containing it (a name of four letters or more: "stone" in "stonebridge")."""
    if not names:
        return 1.0
    words = {_plain(w) for w in _WORD.findall(text or "")}
    found = sum(any(_alike(name, word) for word in words) for name in names)
    return (1 + found) / (1 + len(names))


@functools.lru_cache(maxsize=1 << 16)
def _alike(name: str, word: str) -> bool:
    """``word`` mentions ``name`` (see :func:`name_coverage`); the cheap bounds first."""
    if name == word or (len(name) >= 4 and name in word):
        return True
    if 2 * min(len(name), len(word)) < NAME_MATCH * (len(name) + len(word)):
        return False  # the lengths alone keep the ratio below the bar
    matcher = difflib.SequenceMatcher(None, name, word)
    return matcher.quick_ratio() >= NAME_MATCH and matcher.ratio() >= NAME_MATCH
