"""The two filter layers, as pure functions over a video's OCR lines (no Ray, no models).

A *line* is what the recognizer read in one sampled frame::

    {"t": 1.5, "t0": 1.0, "t1": 2.0, "text": "Breaking news", "score": 0.98,
     "x0": 0.06, "y0": 0.16, "x1": 0.71, "y1": 0.29}

(``t`` the sample time, ``[t0, t1)`` the span of video the frame stands for, the box in
fractions of the frame). **Layer 1** drops lines by confidence, box height and screen
region, and lines without a letter or digit. **Layer 2** merges a line repeated across
consecutive sampled frames into one timed *segment* (``start_s`` = the first frame's
``t0``, ``end_s`` = the last one's ``t1``), tolerating OCR noise (similar texts are one
line, the most frequent reading wins) and short gaps (a frame where the line was missed),
and drops duplicates (the same text twice in one frame).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tideflow_ocr.config import OcrConfig

__all__ = ["Segment", "edit_distance", "layer1", "layer2", "normalize", "similarity"]


def normalize(text: str) -> str:
    """Whitespace runs as one space, trimmed."""
    return " ".join(str(text).split())


def _has_word(text: str) -> bool:
    return any(unicodedata.category(c)[0] in "LN" for c in text)


def layer1(lines: Iterable[Mapping[str, Any]], config: OcrConfig) -> list[dict[str, Any]]:
    """The lines that pass confidence (``min_score``), box height (``min_box_height``) and
    screen region (``region``: the box centre inside it), and hold at least one letter or
    digit (a shape read as ``●`` is noise), with normalized text."""
    x0, y0, x1, y1 = config.region
    kept = []
    for line in lines:
        text = normalize(line["text"])
        if not _has_word(text) or float(line["score"]) < config.min_score:
            continue
        if float(line["y1"]) - float(line["y0"]) < config.min_box_height:
            continue
        cx = (float(line["x0"]) + float(line["x1"])) / 2
        cy = (float(line["y0"]) + float(line["y1"])) / 2
        if not (x0 <= cx <= x1 and y0 <= cy <= y1):
            continue
        kept.append({**line, "text": text})
    return kept


@dataclass
class Segment:
    """A line of text on screen from ``start_s`` to ``end_s``."""

    text: str
    start_s: float
    end_s: float
    score: float
    """Mean recognizer score over the frames it was read in."""
    frames: int
    """Sampled frames it was read in."""
    top: float
    """Mean top of its box (fraction of the frame height): orders lines shown together."""

    def as_row(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "score": round(self.score, 4),
            "frames": self.frames,
            "top": round(self.top, 4),
        }


@dataclass
class _Open:
    first: int
    last: int
    t0: float
    t1: float
    readings: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    tops: list[float] = field(default_factory=list)

    @property
    def text(self) -> str:
        best = max(self.readings.values())
        return min(t for t, n in self.readings.items() if n == best)


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two sequences (of characters, usually)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def similarity(a: str, b: str) -> float:
    """1 − edit distance ÷ the longer length: OCR noise (a character or two) stays close
    to 1, a different line (other words) does not."""
    if a == b:
        return 1.0
    return 1.0 - edit_distance(a, b) / max(len(a), len(b))


def layer2(
    frames: Sequence[Mapping[str, Any]],
    lines: Iterable[Mapping[str, Any]],
    config: OcrConfig,
) -> list[Segment]:
    """Timed segments from the layer-1 lines of every sampled frame of a video.

    ``frames`` lists *all* sampled frames (``t``, ``t0``, ``t1``), with or without text: a
    frame without a line ends that line's segment (after ``max_gap_frames`` of them).
    Segments come sorted by start, then by position on screen.
    """
    ordered = sorted({float(f["t"]): f for f in frames}.values(), key=lambda f: float(f["t"]))
    index = {float(f["t"]): i for i, f in enumerate(ordered)}
    per_frame: dict[int, dict[str, Mapping[str, Any]]] = {}
    for line in lines:
        i = index.get(float(line["t"]))
        if i is None:
            continue
        seen = per_frame.setdefault(i, {})
        text = normalize(line["text"])
        if text not in seen or float(line["score"]) > float(seen[text]["score"]):
            seen[text] = {**line, "text": text}  # the same text twice in a frame: once
    done: list[_Open] = []
    active: list[_Open] = []
    for i, frame in enumerate(ordered):
        still: list[_Open] = []
        for seg in active:  # segments not seen for too long are closed
            (still if i - seg.last - 1 <= config.max_gap_frames else done).append(seg)
        active = still
        extended: set[int] = set()
        for line in sorted(per_frame.get(i, {}).values(), key=lambda x: float(x["y0"])):
            text = line["text"]
            best, best_sim = None, config.similarity
            for k, seg in enumerate(active):
                if k in extended:
                    continue
                sim = similarity(text, seg.text)
                if sim >= best_sim:
                    best, best_sim = k, sim
            if best is None:
                seg = _Open(first=i, last=i, t0=float(frame["t0"]), t1=float(frame["t1"]))
                active.append(seg)
                best = len(active) - 1
            seg = active[best]
            seg.last, seg.t1 = i, float(frame["t1"])
            seg.readings[text] += 1
            seg.scores.append(float(line["score"]))
            seg.tops.append(float(line["y0"]))
            extended.add(best)
    done.extend(active)
    segments = [
        Segment(
            text=seg.text,
            start_s=seg.t0,
            end_s=seg.t1,
            score=sum(seg.scores) / len(seg.scores),
            frames=len(seg.scores),
            top=sum(seg.tops) / len(seg.tops),
        )
        for seg in done
    ]
    return sorted(segments, key=lambda s: (round(s.start_s, 6), s.top))
