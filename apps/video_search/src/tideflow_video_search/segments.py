"""Timed text → segments: pure functions, no Ray, no models.

A *segment* is a few seconds of text from one channel with its time span. OCR text becomes
one segment per run of frames that show the same text (a slide is one moment, however long
it stays); subtitle cues and speech segments are merged while they follow each other
closely, share a language and stay within ``max_seconds`` and ``max_chars``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Timed", "merge_timed", "ocr_runs", "frame_text"]

_SPACES = re.compile(r"\s+")
_MEANINGFUL = re.compile(r"[^\W_]", re.UNICODE)


@dataclass(frozen=True)
class Timed:
    """A piece of text with its span and language."""

    start_s: float
    end_s: float
    text: str
    language: str = ""


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def merge_timed(
    items: Iterable[Timed],
    *,
    max_seconds: float = 6.0,
    max_chars: int = 400,
    max_gap_s: float = 1.5,
) -> list[Timed]:
    """Consecutive items (by start) merged while the gap between them is at most
    ``max_gap_s``, the language is the same, and the result stays within ``max_seconds``
    and ``max_chars``. Empty texts are dropped."""
    out: list[Timed] = []
    for item in sorted(items, key=lambda i: (i.start_s, i.end_s)):
        text = _norm(item.text)
        if not text:
            continue
        last = out[-1] if out else None
        if (
            last is not None
            and item.language == last.language
            and item.start_s - last.end_s <= max_gap_s
            and max(item.end_s, last.end_s) - last.start_s <= max_seconds
            and len(last.text) + 1 + len(text) <= max_chars
        ):
            out[-1] = Timed(
                last.start_s, max(item.end_s, last.end_s), f"{last.text} {text}", last.language
            )
        else:
            out.append(Timed(item.start_s, item.end_s, text, item.language))
    return out


def frame_text(lines: Sequence[dict[str, object]]) -> str:
    """The lines read in one frame, top to bottom, left to right, one text. Lines without
    a letter or digit (bullets, shapes read as symbols) are left out."""
    lines = [line for line in lines if _MEANINGFUL.search(str(line["text"]))]
    ordered = sorted(lines, key=lambda line: (round(float(line["y0"]), 2), float(line["x0"])))  # type: ignore[arg-type]
    return _norm(" ".join(str(line["text"]) for line in ordered))


def ocr_runs(
    frames: Sequence[tuple[float, float, str]], *, language_of: object = None
) -> list[Timed]:
    """``(t0, t1, text)`` per kept frame, in time order → one segment per run of frames
    showing the same text (frames without text end a run and make no segment)."""
    out: list[Timed] = []
    for t0, t1, raw in frames:
        text = _norm(raw)
        if not text:
            continue
        last = out[-1] if out else None
        if last is not None and last.text == text and t0 - last.end_s <= 1e-6 + 0.5:
            out[-1] = Timed(last.start_s, max(last.end_s, t1), text, last.language)
        else:
            language = language_of(text) if callable(language_of) else ""
            out.append(Timed(t0, t1, text, str(language)))
    return out
