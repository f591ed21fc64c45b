"""Writing the planned corpus: the videos (slides, speech, embedded subtitles), sidecar
subtitle files, ``truth.json`` and ``queries.jsonl``; and the bad inputs ingest must survive."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import structlog

from tideflow.core.errors import ConfigError
from tideflow_video_search._sample_plan import plan_samples
from tideflow_video_search._sample_queries import QUERIES_FILE, write_queries
from tideflow_video_search._sample_truth import LANGUAGES, TRUTH_FILE, SampleCorpus, VideoTruth

log = structlog.get_logger(__name__)

_WIDTH, _HEIGHT, _RATE, _AUDIO_RATE = 320, 180, 5, 16000
_WORDS_PER_MINUTE = 130
_VOICES = {"en": "en-us", "es": "es+m3"}  # read best by Whisper base (WER 0.16, 0.45)


def _make_folder(root: Path) -> None:
    """Create ``root`` (and its parents), or say why it cannot be the corpus folder."""
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        shown = "it" if existing == root else str(existing)
        message = f"the samples folder {str(root)!r} must be a directory, but {shown} is a file"
        raise ConfigError(message)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"cannot create the samples folder {str(root)!r}: {error.strerror or error}"
        raise ConfigError(message) from error


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
    ``truth.json`` and ``queries.jsonl`` (one query per fact of this corpus, then the
    unanswerable ones: what ``video-search eval --queries`` takes). The same arguments give
    byte-identical files. Needs espeak-ng for speech
    and the DejaVu and WenQuanYi fonts. ``progress(done, total)`` is called after each video.
    Returns the truth (its ``folder`` set)."""
    from tideflow.media.testing import Cue, Scene, make_video, write_srt, write_vtt

    started = time.perf_counter()
    corpus = plan_samples(count, seed=seed, languages=languages)
    root = Path(folder)
    _make_folder(root)
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
    write_queries(root / QUERIES_FILE, corpus)
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
