"""The corpus plan: which fact goes into which video, and when each slide, subtitle and
spoken sentence starts and ends (pure: no files, no fonts, no espeak)."""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from tideflow.core.errors import ConfigError
from tideflow_video_search._sample_facts import (
    EN_SPOKEN,
    EN_WRITTEN,
    ES_SPOKEN,
    ES_WRITTEN,
    SLUGS,
    TITLES,
    UNTITLED,
    ZH_WRITTEN,
)
from tideflow_video_search._sample_truth import LANGUAGES, Fact, SampleCorpus, Span, VideoTruth

_GAP_S = 0.8  # blank frames between two parts of a video
_TITLE_S = 1.5
_SLIDE_S = 4.5  # how long a fact slide stays (22 identical frames of text at 5 fps)
_REPEAT_S = 2.5
_CUE_S = 3.5
_LATIN_LINE, _CJK_LINE, _MAX_LINES = 24, 13, 4  # characters per slide line (20-px glyphs)


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
MIN_COUNT = len(_RECIPES)
"""The fewest videos that hold every language, channel and carrier (one of each recipe)."""


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
    drawn: list[Fact] = []
    for index, ((language, title, sidecars, parts), cycle) in enumerate(sequence):
        facts = [queues[(language, kind)].pop(0) for kind, _ in parts if kind != "again"]
        drawn.extend(facts)
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
        facts=_placed(drawn),
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


def _placed(drawn: Sequence[Fact]) -> tuple[Fact, ...]:
    """The drawn facts, each once, in the order first drawn. A corpus of fewer than
    :data:`MAX_COUNT` videos takes only the head of a pool's queue, which can hold an
    original whose copy stays behind: that fact is stated once here, so it loses its
    ``shared`` or ``twin`` mark."""
    ids = Counter(f.id for f in drawn)
    placed: dict[str, Fact] = {}
    for fact in drawn:
        if fact.id not in placed:
            placed[fact.id] = replace(
                fact,
                shared=fact.shared and ids[fact.id] == 2,
                twin=fact.twin if f"{fact.id}-twin" in ids else None,
            )
    return tuple(placed.values())


def _check_copies_apart(corpus: SampleCorpus) -> None:
    """Each fact is in as many videos as its truth says: a shared fact in two, any other in
    one (a video may show its first slide again); a fact and its twin in different ones."""
    where = {f.id: {v for v, _ in corpus.spans_of(f.id)} for f in corpus.facts}
    for fact in corpus.facts:
        expected = 2 if fact.shared else 1
        if len(where[fact.id]) != expected:
            message = (
                f"fact {fact.id} (shared={fact.shared}) landed in {len(where[fact.id])} "
                f"videos, expected {expected}: {sorted(where[fact.id])}"
            )
            raise AssertionError(message)
        twin = where.get(f"{fact.id}-twin", set())
        if fact.twin and (not twin or twin & where[fact.id]):
            message = f"fact {fact.id} is in {sorted(where[fact.id])}, its twin in {sorted(twin)}"
            raise AssertionError(message)


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
