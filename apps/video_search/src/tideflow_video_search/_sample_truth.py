"""The truth of a generated corpus: its facts, each video's spans (what one channel holds
from when to when), and ``truth.json`` read back."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "zh", "es")
"""The corpus's languages: English, Chinese (no speech), Spanish."""
TRUTH_FILE = "truth.json"
"""Written next to the videos by :func:`make_samples`; read back by :func:`load_truth`."""


@dataclass(frozen=True, kw_only=True)
class Fact:
    """One sentence the corpus states, and the paraphrased question it answers."""

    id: str
    """``<lang>-<pool>-<nn>``; a twin adds ``-twin``."""
    language: str
    text: str
    question: str
    spoken: bool
    """Written for speech: plain words that espeak-ng says and Whisper hears."""
    twin: tuple[str, str] | None = None
    """``(number, other number)``: another video states it with the other number."""
    shared: bool = False
    """Another video states the very same sentence."""


@dataclass(frozen=True, kw_only=True)
class Span:
    """A text one channel of a video holds from ``start_s`` to ``end_s``."""

    channel: str
    """``ocr``, ``subtitle`` or ``speech``."""
    carrier: str
    """``slide``, ``srt``, ``vtt``, ``mov_text`` (embedded) or ``speech``."""
    start_s: float
    end_s: float
    text: str
    """The sentence; for a slide, its lines as drawn (Latin joined by spaces, CJK by none)."""
    language: str
    fact: str | None = None
    """The :class:`Fact`'s id; ``None`` for a title slide."""
    lines: tuple[str, ...] = ()
    """A slide's lines, top to bottom."""


@dataclass(frozen=True, kw_only=True)
class VideoTruth:
    """Everything a generated video holds; ``video_id`` is its path under the corpus folder."""

    video_id: str
    language: str
    duration_s: float
    spans: tuple[Span, ...]
    sidecar: str | None = None
    """The sidecar subtitle file's path under the corpus folder, if any."""
    background: tuple[int, int, int] = (24, 36, 72)

    def channel(self, channel: str) -> tuple[Span, ...]:
        """The spans of one channel, in time order."""
        return tuple(sorted((s for s in self.spans if s.channel == channel), key=_start))

    @property
    def has_speech(self) -> bool:
        return any(s.channel == "speech" for s in self.spans)


@dataclass(frozen=True, kw_only=True)
class SampleCorpus:
    """The truth of a generated corpus: its videos and the facts they state."""

    count: int
    seed: int
    languages: tuple[str, ...]
    videos: tuple[VideoTruth, ...]
    facts: tuple[Fact, ...]
    """The facts placed in at least one video, each once (twins are facts of their own)."""
    folder: Path | None = field(default=None, compare=False)

    def video(self, video_id: str) -> VideoTruth:
        for video in self.videos:
            if video.video_id == video_id:
                return video
        raise KeyError(f"no video {video_id!r} in the corpus ({len(self.videos)} videos)")

    def spans_of(self, fact_id: str) -> list[tuple[str, Span]]:
        """``(video_id, span)`` for every place the fact is stated."""
        return [(v.video_id, s) for v in self.videos for s in v.spans if s.fact == fact_id]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("folder")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path | None = None) -> SampleCorpus:
        videos = tuple(
            VideoTruth(
                **{
                    **v,
                    "spans": tuple(Span(**{**s, "lines": tuple(s["lines"])}) for s in v["spans"]),
                    "background": tuple(v["background"]),
                }
            )
            for v in data["videos"]
        )
        facts = tuple(
            Fact(**{**f, "twin": tuple(f["twin"]) if f["twin"] else None}) for f in data["facts"]
        )
        return cls(
            count=data["count"],
            seed=data["seed"],
            languages=tuple(data["languages"]),
            videos=videos,
            facts=facts,
            folder=folder,
        )


def _start(span: Span) -> float:
    return span.start_s


def load_truth(folder: str | os.PathLike[str]) -> SampleCorpus:
    """The truth :func:`make_samples` wrote into ``folder`` (``truth.json``)."""
    path = Path(folder) / TRUTH_FILE
    if not path.exists():
        message = f"{path} not found: is {folder} a folder that `video-search samples` made?"
        raise FileNotFoundError(message)
    return SampleCorpus.from_json(json.loads(path.read_text(encoding="utf-8")), Path(folder))
