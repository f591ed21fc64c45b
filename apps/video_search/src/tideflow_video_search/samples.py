"""A generated video corpus whose every fact, place and time is known: for tests and ``eval``.

:func:`plan_samples` lays the corpus out (pure: no files, no fonts, no espeak);
:func:`make_samples` writes it; :func:`write_queries` wrote the frozen
``data/queries.jsonl`` from the default corpus (64 videos, seed 0).

Layout (``count`` = 64): six video recipes in turn, two per language, so any six
consecutive videos hold every channel and language. Times are seconds.

====  ====  ===================================================================  ===========
 #    lang  what the video holds (each *fact* is one sentence)                    audio
====  ====  ===================================================================  ===========
 0    en    title slide; fact 1 on a slide *and* spoken; fact 2 spoken             speech
 1    zh    title slide; fact 1 on a slide; fact 2 in a sidecar (.srt or .zh.vtt)  none
 2    es    fact 1 spoken; fact 2 spoken *and* in a sidecar (.es.vtt or .srt);     speech
            fact 3 on a slide
 3    en    title slide; facts 1 and 2 in embedded ``mov_text`` subtitles          none
 4    zh    title slide; facts 1 and 2 on slides, fact 1's slide shown again;      none
            fact 3 in embedded ``mov_text`` subtitles
 5    es    title slide; fact 1 on a slide; fact 2 in a sidecar (.srt or .es.vtt)  none
====  ====  ===================================================================  ===========

Hard cases: a *twin* is a fact repeated in another video with one number changed (each has
its own query, which names the number); a *shared* fact is the same sentence in two videos
(both relevant); slides are held for seconds (repeated frames) and one slide comes back.
Speech is espeak-ng (``en``, ``es``; no Chinese speech); no video has audio without speech.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from tideflow.core.errors import ConfigError
from tideflow_video_search._sample_facts import (
    EN_SPOKEN,
    EN_WRITTEN,
    ES_SPOKEN,
    ES_WRITTEN,
    SLUGS,
    TITLES,
    UNANSWERABLE,
    UNTITLED,
    ZH_WRITTEN,
)

__all__ = [
    # the corpus and its truth
    "Fact",
    "SampleCorpus",
    "Span",
    "VideoTruth",
    "load_truth",
    "plan_samples",
    # writing it
    "make_bad_samples",
    "make_samples",
    # the frozen questions
    "DEFAULT_QUERIES",
    "UNANSWERABLE",
    "build_queries",
    "write_queries",
    # constants
    "LANGUAGES",
    "MAX_COUNT",
    "TRUTH_FILE",
]

log = structlog.get_logger(__name__)

LANGUAGES = ("en", "zh", "es")
"""The corpus's languages: English, Chinese (no speech), Spanish."""
TRUTH_FILE = "truth.json"
"""Written next to the videos by :func:`make_samples`; read back by :func:`load_truth`."""
DEFAULT_QUERIES = Path(__file__).parent / "data" / "queries.jsonl"
"""The frozen query file for the default corpus (``make_samples(dir)``: 64 videos, seed 0)."""

_WIDTH, _HEIGHT, _RATE, _AUDIO_RATE = 320, 180, 5, 16000
_WORDS_PER_MINUTE = 130
_GAP_S = 0.8  # blank frames between two parts of a video
_TITLE_S = 1.5
_SLIDE_S = 4.5  # how long a fact slide stays (22 identical frames of text at 5 fps)
_REPEAT_S = 2.5
_CUE_S = 3.5
_LATIN_LINE, _CJK_LINE, _MAX_LINES = 24, 13, 4  # characters per slide line (20-px glyphs)
_VOICES = {"en": "en-us", "es": "es+m3"}  # read best by Whisper base (WER 0.16, 0.45)


# --------------------------------------------------------------------------- truth


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


# --------------------------------------------------------------------------- facts


def _catalog() -> dict[tuple[str, str], list[Fact]]:
    """The facts of each pool (``(language, "spoken" | "written")``), in authored order."""
    pools = {
        ("en", "spoken"): EN_SPOKEN,
        ("en", "written"): EN_WRITTEN,
        ("zh", "written"): ZH_WRITTEN,
        ("es", "spoken"): ES_SPOKEN,
        ("es", "written"): ES_WRITTEN,
    }
    catalog = {}
    for (language, kind), entries in pools.items():
        catalog[(language, kind)] = [
            Fact(
                id=f"{language}-{kind}-{i:02d}",
                language=language,
                text=text,
                question=question,
                spoken=kind == "spoken",
                twin=twin,
                shared=shared,
            )
            for i, (text, question, twin, shared) in enumerate(entries)
        ]
    return catalog


def _twin_of(fact: Fact) -> Fact:
    assert fact.twin is not None
    number, other = fact.twin
    return Fact(
        id=f"{fact.id}-twin",
        language=fact.language,
        text=fact.text.replace(number, other),
        question=fact.question.replace(number, other),
        spoken=fact.spoken,
    )


# --------------------------------------------------------------------------- layout

# A recipe: (language, title?, audio?, sidecar formats by cycle parity, parts). A part:
# (pool kind, carriers); "again" re-shows the slide of the recipe's first part.
_Recipe = tuple[str, bool, tuple[str, str] | None, tuple[tuple[str, tuple[str, ...]], ...]]
_RECIPES: tuple[_Recipe, ...] = (
    ("en", True, None, (("spoken", ("slide", "speech")), ("spoken", ("speech",)))),
    ("zh", True, ("srt", "vtt"), (("written", ("slide",)), ("written", ("sidecar",)))),
    (
        "es",
        False,
        ("vtt", "srt"),
        (
            ("spoken", ("speech",)),
            ("spoken", ("speech", "sidecar")),
            ("written", ("slide",)),
        ),
    ),
    ("en", True, None, (("written", ("mov_text",)), ("written", ("mov_text",)))),
    (
        "zh",
        True,
        None,
        (
            ("written", ("slide",)),
            ("written", ("slide",)),
            ("again", ()),
            ("written", ("mov_text",)),
        ),
    ),
    ("es", True, ("srt", "vtt"), (("written", ("slide",)), ("written", ("sidecar",)))),
)
_COPY_DISTANCE = 4  # a twin or shared copy comes this many facts (of its pool) later
MAX_COUNT = 64
"""The most videos the fact catalog fills without repeating itself."""


def plan_samples(
    count: int = 64, *, seed: int = 0, languages: Sequence[str] = LANGUAGES
) -> SampleCorpus:
    """The corpus :func:`make_samples` would write, without writing anything: every video's
    id, duration, slides, subtitles and speech with their times. Deterministic in
    ``(count, seed, languages)``; ``seed`` shuffles which fact goes where, the titles and
    the colours."""
    chosen = tuple(languages)
    unknown = sorted(set(chosen) - set(LANGUAGES))
    if unknown or not chosen:
        message = f"languages must be a non-empty subset of {LANGUAGES}, got {chosen!r}"
        raise ConfigError(message)
    if not 1 <= count <= MAX_COUNT:
        raise ConfigError(f"count must be in 1..{MAX_COUNT}, got {count!r}")
    rng = random.Random(seed)
    recipes = [r for r in _RECIPES if r[0] in chosen]
    sequence = [(recipes[i % len(recipes)], i // len(recipes)) for i in range(count)]
    queues = {key: _queue(facts, rng) for key, facts in _catalog().items()}
    # How many facts each pool must give (a pool that runs dry is a catalog too small).
    needed: dict[tuple[str, str], int] = {}
    for (language, *_, parts), _cycle in sequence:
        for kind, _carriers in parts:
            if kind != "again":
                needed[(language, kind)] = needed.get((language, kind), 0) + 1
    for key, n in needed.items():
        if n > len(queues[key]):
            message = f"count={count} needs {n} {key} facts; the catalog holds {len(queues[key])}"
            raise ConfigError(message)
    videos = []
    placed: dict[str, Fact] = {}
    for index, ((language, title, sidecars, parts), cycle) in enumerate(sequence):
        facts = [queues[(language, kind)].pop(0) for kind, _ in parts if kind != "again"]
        for fact in facts:
            placed.setdefault(fact.id, fact)
        video = _lay_out(
            index=index,
            language=language,
            title=rng.choice(TITLES[language]) if title else None,
            sidecar=sidecars[cycle % 2] if sidecars else None,
            parts=parts,
            facts=facts,
            background=(rng.randrange(10, 70), rng.randrange(10, 70), rng.randrange(40, 110)),
        )
        videos.append(video)
    corpus = SampleCorpus(
        count=count,
        seed=seed,
        languages=chosen,
        videos=tuple(videos),
        facts=tuple(placed.values()),
    )
    _check_copies_apart(corpus)
    return corpus


def _queue(facts: list[Fact], rng: random.Random) -> list[Fact]:
    """The pool's facts in the order they are placed: shuffled, the facts that have a copy
    kept in the first two thirds, each copy ``_COPY_DISTANCE`` facts after its original."""
    plain = [f for f in facts if not (f.twin or f.shared)]
    special = [f for f in facts if f.twin or f.shared]
    rng.shuffle(plain)
    rng.shuffle(special)
    slots = sorted(rng.sample(range(max(1, 2 * len(plain) // 3)), len(special)))
    order: list[Fact] = []
    for i, fact in enumerate(plain):
        while slots and slots[0] == i:
            slots.pop(0)
            order.append(special.pop(0))
        order.append(fact)
    order.extend(special)
    queue: list[Fact] = []
    pending: list[tuple[int, Fact]] = []  # (facts still to place before it, copy)
    for fact in order:
        queue.append(fact)
        pending = [(n - 1, c) for n, c in pending]
        queue.extend(c for n, c in pending if n <= 0)
        pending = [(n, c) for n, c in pending if n > 0]
        if fact.twin or fact.shared:
            pending.append((_COPY_DISTANCE, _twin_of(fact) if fact.twin else fact))
    queue.extend(c for _, c in pending)
    return queue


def _check_copies_apart(corpus: SampleCorpus) -> None:
    for fact in corpus.facts:
        videos = [v for v, _ in corpus.spans_of(fact.id)]
        if fact.shared and len(videos) > 1 and len(set(videos)) == 1:
            raise AssertionError(f"shared fact {fact.id} landed twice in {videos[0]}")
    for video in corpus.videos:
        ids = {s.fact for s in video.spans if s.fact}
        twins = {i.removesuffix("-twin") for i in ids if i.endswith("-twin")}
        if twins & ids:
            raise AssertionError(f"a fact and its twin landed in one video: {video.video_id}")


def _wrap(text: str) -> tuple[str, ...]:
    """Slide lines that fit 320 px at 20-px glyphs: up to 24 Latin characters, or 13 CJK
    characters (a Latin or digit run counts 0.6 each and is never split)."""
    cjk = any(unicodedata.east_asian_width(ch) in "WF" for ch in text)
    pieces = re.findall(r"[0-9A-Za-z.,:%-]+|\S", text) if cjk else text.split()
    room = _CJK_LINE if cjk else _LATIN_LINE
    lines: list[str] = []
    line, used = "", 0.0
    for piece in pieces:
        if cjk:  # punctuation may hang past the line's end rather than start a line
            punct = unicodedata.category(piece[0]).startswith("P") and not piece.isascii()
            width = 0.0 if punct else 0.6 * len(piece) if piece.isascii() else float(len(piece))
            gap, joined = 0.0, line + piece
        else:
            width, gap, joined = float(len(piece)), float(bool(line)), f"{line} {piece}".strip()
        if line and used + gap + width > room:
            lines.append(line)
            line, used = piece, width
        else:
            line, used = joined, used + gap + width
    if line:
        lines.append(line)
    if len(lines) > _MAX_LINES:
        raise ConfigError(f"slide text too long for {_MAX_LINES} lines: {text!r}")
    return tuple(lines)


def _speech_s(text: str) -> float:
    """How long the part holding a spoken ``text`` lasts: espeak-ng at 130 words a minute
    says ~13 characters a second, and the clip starts 0.2 s in (fitted on the catalog with a
    0.1 s margin; :func:`make_samples` speeds up a clip that would still overrun)."""
    return math.ceil((0.9 + 0.075 * len(text)) * 10) / 10 + 0.2


def _lay_out(
    *,
    index: int,
    language: str,
    title: str | None,
    sidecar: str | None,
    parts: Sequence[tuple[str, tuple[str, ...]]],
    facts: Sequence[Fact],
    background: tuple[int, int, int],
) -> VideoTruth:
    name = SLUGS.get(title, title) if title else UNTITLED[language]
    video_id = f"{language}/{_ascii(name.lower().replace(' ', '-'))}-{index:02d}.mp4"
    spans: list[Span] = []
    t = 0.0
    if title:
        spans.append(_slide(0.0, _TITLE_S, title, language, None))
        t = _TITLE_S + _GAP_S / 2
    else:
        t = _GAP_S / 2
    remaining = iter(facts)
    first: tuple[Fact, float, float] | None = None
    for kind, carriers in parts:
        if kind == "again":
            assert first is not None
            fact = first[0]
            spans.append(_slide(t, round(t + _REPEAT_S, 2), fact.text, language, fact.id))
            t = round(t + _REPEAT_S + _GAP_S, 2)
            continue
        fact = next(remaining)
        length = _speech_s(fact.text) if "speech" in carriers else _CUE_S
        if "slide" in carriers:
            length = max(length, _SLIDE_S)
        start, end = round(t, 2), round(t + length, 2)
        first = first or (fact, start, end)
        for carrier in carriers:
            if carrier == "slide":
                spans.append(_slide(start, end, fact.text, language, fact.id))
                continue
            channel = "speech" if carrier == "speech" else "subtitle"
            spans.append(
                Span(
                    channel=channel,
                    carrier=sidecar if carrier == "sidecar" and sidecar else carrier,
                    start_s=start,
                    end_s=end,
                    text=fact.text,
                    language=language,
                    fact=fact.id,
                )
            )
        t = round(end + _GAP_S, 2)
    duration = round(t - _GAP_S / 2, 2)
    stem = video_id.removesuffix(".mp4")
    sidecar_path = None
    if sidecar == "srt":
        sidecar_path = f"{stem}.srt"
    elif sidecar == "vtt":
        sidecar_path = f"{stem}.{language}.vtt"
    return VideoTruth(
        video_id=video_id,
        language=language,
        duration_s=duration,
        spans=tuple(spans),
        sidecar=sidecar_path,
        background=background,
    )


def _slide(start: float, end: float, text: str, language: str, fact: str | None) -> Span:
    lines = _wrap(text)
    return Span(
        channel="ocr",
        carrier="slide",
        start_s=start,
        end_s=end,
        text=text,
        language=language,
        fact=fact,
        lines=lines,
    )


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in folded)


# --------------------------------------------------------------------------- writing


def make_samples(
    folder: str | os.PathLike[str],
    *,
    count: int = 64,
    seed: int = 0,
    languages: Sequence[str] = LANGUAGES,
    progress: Callable[[int, int], None] | None = None,
) -> SampleCorpus:
    """Write the corpus of :func:`plan_samples` into ``folder``: ``<lang>/<name>.mp4`` (320 ×
    180, 5 fps, H.264; AAC speech where a video speaks; embedded ``mov_text`` where its
    subtitles are embedded), sidecar ``<stem>.srt`` / ``<stem>.<lang>.vtt`` files, and
    ``truth.json``. The same arguments give byte-identical files. Needs espeak-ng for speech
    and the DejaVu and WenQuanYi fonts. ``progress(done, total)`` is called after each video.
    Returns the truth (its ``folder`` set)."""
    from tideflow.media.testing import Cue, Scene, make_video, write_srt, write_vtt

    started = time.perf_counter()
    corpus = plan_samples(count, seed=seed, languages=languages)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for done, video in enumerate(corpus.videos, start=1):
        scenes = [
            Scene(start_s=s.start_s, end_s=s.end_s, lines=s.lines) for s in video.channel("ocr")
        ]
        subtitles = video.channel("subtitle")
        cues = [
            Cue(start_s=s.start_s, end_s=s.end_s, text=s.text, language=s.language)
            for s in subtitles
        ]
        embedded = [c for c, s in zip(cues, subtitles, strict=True) if s.carrier == "mov_text"]
        sidecar = [c for c, s in zip(cues, subtitles, strict=True) if s.carrier != "mov_text"]
        make_video(
            root / video.video_id,
            duration_s=video.duration_s,
            scenes=scenes,
            width=_WIDTH,
            height=_HEIGHT,
            rate=_RATE,
            audio=_soundtrack(video) if video.has_speech else None,
            audio_rate=_AUDIO_RATE,
            subtitles=embedded,
            background=video.background,
            # Slide videos, as a deck's screencast: the picture holds still while a slide
            # is shown (the frames near-duplicate removal is for).
            motion=False,
        )
        if video.sidecar and sidecar:
            writer = write_srt if video.sidecar.endswith(".srt") else write_vtt
            writer(root / video.sidecar, sidecar)
        if progress is not None:
            progress(done, len(corpus.videos))
    truth = json.dumps(corpus.to_json(), ensure_ascii=False, indent=1)
    (root / TRUTH_FILE).write_text(truth + "\n", encoding="utf-8")
    log.info(
        "samples.written",
        folder=str(root),
        videos=len(corpus.videos),
        facts=len(corpus.facts),
        seconds=round(time.perf_counter() - started, 2),
    )
    return SampleCorpus(
        count=corpus.count,
        seed=corpus.seed,
        languages=corpus.languages,
        videos=corpus.videos,
        facts=corpus.facts,
        folder=root,
    )


def _soundtrack(video: VideoTruth) -> np.ndarray:
    """The video's audio: each spoken span's text said by espeak-ng, starting 0.2 s into the
    span, sped up when it would overrun the span."""
    from tideflow.media.testing import speak

    track = np.zeros(round(video.duration_s * _AUDIO_RATE), np.float32)
    lead = 0.2
    for span in video.channel("speech"):
        voice = _VOICES[span.language]
        room = span.end_s - span.start_s - lead
        clip = speak(span.text, voice=voice, rate=_AUDIO_RATE, words_per_minute=_WORDS_PER_MINUTE)
        if len(clip) > room * _AUDIO_RATE:
            faster = math.ceil(_WORDS_PER_MINUTE * len(clip) / (room * _AUDIO_RATE)) + 5
            clip = speak(span.text, voice=voice, rate=_AUDIO_RATE, words_per_minute=faster)
        at = round((span.start_s + lead) * _AUDIO_RATE)
        clip = clip[: len(track) - at]
        track[at : at + len(clip)] = clip
    return track


def make_bad_samples(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Write videos that ingest must survive into ``folder/bad/``; return ``{video_id:
    what is wrong}`` (ids relative to ``folder``, like the good videos')."""
    from tideflow.media.testing import Scene, make_video

    root = Path(folder)
    bad = root / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    slide = (Scene(start_s=0.0, end_s=4.0, lines=("Nothing to hear here",)),)
    make_video(bad / "corrupt.mp4", duration_s=0.0, corrupt=True, seed=11)
    (bad / "empty.mp4").write_bytes(b"")
    make_video(bad / "silent.mp4", duration_s=4.0, scenes=slide, seed=12)
    broken = (Scene(start_s=0.0, end_s=4.0, lines=("Subtitles are broken",)),)
    make_video(bad / "broken-subtitles.mp4", duration_s=4.0, scenes=broken, seed=13)
    (bad / "broken-subtitles.srt").write_text(
        "1\nthis is not a timestamp\nHello\n\n2\n00:00:xx,000 --> soon\n", encoding="utf-8"
    )
    cut = (Scene(start_s=0.0, end_s=6.0, lines=("Half of this file is gone",)),)
    make_video(bad / "truncated.mp4", duration_s=6.0, scenes=cut, truncate=0.5, seed=14)
    return {
        "bad/corrupt.mp4": "not a video: an MP4 signature, then noise",
        "bad/empty.mp4": "zero bytes",
        "bad/silent.mp4": "no audio stream and no subtitles (one slide of text)",
        "bad/broken-subtitles.mp4": "its sidecar broken-subtitles.srt does not parse",
        "bad/truncated.mp4": "cut to half its bytes (index intact, later frames missing)",
    }


# --------------------------------------------------------------------------- queries


def build_queries(corpus: SampleCorpus) -> list[dict[str, Any]]:
    """One query per fact the corpus states (its paraphrased question; relevant: every span
    stating it), then :data:`UNANSWERABLE`. The record of ``data/queries.jsonl``."""
    queries: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    for fact in sorted(corpus.facts, key=lambda f: (LANGUAGES.index(f.language), f.id)):
        places = corpus.spans_of(fact.id)
        channels = [
            c for c in ("ocr", "subtitle", "speech") if any(s.channel == c for _, s in places)
        ]
        relevant = sorted({(v, round(s.start_s, 2), round(s.end_s, 2)) for v, s in places})
        counters[fact.language] = counters.get(fact.language, 0) + 1
        queries.append(
            {
                "id": f"{fact.language}-{counters[fact.language]:03d}",
                "query": fact.question,
                "language": fact.language,
                "channel": "+".join(channels),
                "answerable": True,
                "relevant": [
                    {"video_id": v, "start_s": start, "end_s": end} for v, start, end in relevant
                ],
            }
        )
    for n, (language, question) in enumerate(
        (u for u in UNANSWERABLE if u[0] in corpus.languages), start=1
    ):
        queries.append(
            {
                "id": f"none-{n:03d}",
                "query": question,
                "language": language,
                "channel": "none",
                "answerable": False,
                "relevant": [],
            }
        )
    return queries


def write_queries(
    path: str | os.PathLike[str] = DEFAULT_QUERIES, corpus: SampleCorpus | None = None
) -> int:
    """Write :func:`build_queries` of ``corpus`` (default: the default corpus) as JSON lines;
    return how many. Used once to freeze ``data/queries.jsonl``, then reviewed by hand."""
    records = build_queries(corpus or plan_samples())
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(records)
