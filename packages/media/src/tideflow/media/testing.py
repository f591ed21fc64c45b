"""Test helpers of ``tideflow.media`` (public API): generated videos whose every word is known.

:func:`make_video` writes an H.264 MP4 with PyAV: slides drawn with DejaVu (Latin) or
WenQuanYi Micro Hei (Chinese), an optional AAC audio track (e.g. :func:`speak`'s espeak-ng
speech) and an optional embedded ``mov_text`` subtitle stream; it also writes garbage files
(``corrupt=True``) and files cut short (``truncate=``). :func:`write_srt` and
:func:`write_vtt` write sidecar subtitles; :func:`wrap_text` breaks a sentence into lines
that fit the frame.

>>> cues = [Cue(start_s=0.5, end_s=2.0, text="Hello")]
>>> make_video("/tmp/a.mp4", duration_s=3.0,                    # doctest: +SKIP
...            scenes=[Scene(start_s=0.0, end_s=3.0, lines=("Chapter 1",))],
...            audio=speak("Hello there"), subtitles=cues)
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import unicodedata
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tideflow.media._deps import require
from tideflow.media.errors import ConfigError, MissingDependencyError

__all__ = [
    # what a video holds
    "Cue",
    "CueLike",
    "Scene",
    "SceneLike",
    # writing files
    "make_video",
    "write_srt",
    "write_vtt",
    # speech and text layout
    "speak",
    "wrap_text",
    # fonts
    "CJK_FONT",
    "LATIN_FONT",
    "cjk_font_available",
    "default_font_size",
    "font_for",
    "has_cjk",
]

LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
"""DejaVu Sans: Latin text (``apt-get install fonts-dejavu-core``)."""
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
"""WenQuanYi Micro Hei: Chinese text, Latin too (``apt-get install fonts-wqy-microhei``)."""

_BACKGROUND = (24, 36, 72)
_TEXT_COLOUR = (250, 250, 250)
_SHAPE_COLOUR = (200, 120, 40)
_ISO639_2 = {"en": "eng", "zh": "chi", "es": "spa", "fr": "fre", "de": "ger", "ja": "jpn"}
# A minimal ASS header: FFmpeg's mov_text encoder refuses to open without one.
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
    b"BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
    b"BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0"
    b"\n\n[Events]\n"
    b"Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


@dataclass(frozen=True, kw_only=True)
class Scene:
    """Text on screen from ``start_s`` (inclusive) to ``end_s`` (exclusive)."""

    start_s: float
    end_s: float
    lines: tuple[str, ...] = ()
    """Lines drawn top to bottom; empty: a frame without text."""


@dataclass(frozen=True, kw_only=True)
class Cue:
    """One subtitle: ``text`` shown from ``start_s`` to ``end_s``."""

    start_s: float
    end_s: float
    text: str
    """May hold line breaks (``\\n``)."""
    language: str = "en"
    """ISO 639-1 code; an embedded stream is tagged with its first cue's language."""

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s:
            message = f"Cue needs 0 <= start_s < end_s, got {self.start_s!r}..{self.end_s!r}"
            raise ConfigError(message)


class SceneLike(Protocol):
    """Anything with a scene's fields (this module's :class:`Scene`, the OCR app's)."""

    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...
    @property
    def lines(self) -> tuple[str, ...]: ...


class CueLike(Protocol):
    """Anything with a cue's fields."""

    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...
    @property
    def text(self) -> str: ...
    @property
    def language(self) -> str: ...


# --------------------------------------------------------------------------- fonts and text


def has_cjk(text: str) -> bool:
    """True when ``text`` holds a CJK ideograph (or kana/hangul): it needs :data:`CJK_FONT`."""
    return any(_is_cjk(ch) for ch in text)


def _is_cjk(ch: str) -> bool:
    wide_letter = unicodedata.east_asian_width(ch) == "W" and ch.isalpha()
    return wide_letter or "\u3000" <= ch <= "\u303f"


def font_for(text: str) -> str:
    """The font file that draws ``text``: :data:`CJK_FONT` for CJK text, else DejaVu."""
    return CJK_FONT if has_cjk(text) else LATIN_FONT


def cjk_font_available() -> bool:
    """True when :data:`CJK_FONT` is installed (``apt-get install fonts-wqy-microhei``)."""
    return os.path.exists(CJK_FONT)


def default_font_size(height: int) -> int:
    """Glyph size for a frame ``height`` pixels high: a ninth of it, at least 18 px."""
    return max(18, height // 9)


def _load_font(path: str, size: int) -> Any:
    image_font = require("PIL.ImageFont", "video")
    if not os.path.exists(path):
        message = (
            f"font {path} is not installed (apt-get install fonts-dejavu-core fonts-wqy-microhei)"
        )
        raise FileNotFoundError(message)
    return image_font.truetype(path, size=size)


def wrap_text(
    text: str, *, width: int = 320, font: str | None = None, size: int | None = None
) -> tuple[str, ...]:
    """Break ``text`` into lines no wider than ``width`` pixels less a 1/16 margin each side,
    drawn with ``font`` (default: :func:`font_for`) at ``size`` px (default: the size
    :func:`make_video` draws a 180-px-high frame with). Latin text breaks between words,
    CJK text between characters (a run of digits or Latin letters stays whole)."""
    path = font or font_for(text)
    face = _load_font(path, size or default_font_size(180))
    room = width - 2 * (width // 16)
    pieces: list[str] = []  # words (with their leading space) and single CJK characters
    for word in text.split():
        chunk = ""
        for ch in word:
            if _is_cjk(ch):
                if chunk:
                    pieces.append(chunk)
                pieces.append(ch)
                chunk = ""
            else:
                chunk += ch
        if chunk:
            pieces.append(chunk)
        pieces.append(" ")
    lines: list[str] = []
    line = ""
    for piece in pieces:
        candidate = line + piece
        if line.strip() and face.getlength(candidate.rstrip()) > room:
            lines.append(line.strip())
            line = piece.lstrip()
        else:
            line = candidate
    if line.strip():
        lines.append(line.strip())
    return tuple(lines)


# --------------------------------------------------------------------------- subtitles


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def write_srt(path: str | os.PathLike[str], cues: Sequence[CueLike]) -> Path:
    """Write ``cues`` as SubRip (``1``, ``00:00:01,000 --> 00:00:02,500``, text, blank)."""
    blocks = [
        f"{i}\n{_timestamp(c.start_s, ',')} --> {_timestamp(c.end_s, ',')}\n{c.text}\n"
        for i, c in enumerate(cues, start=1)
    ]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(blocks), encoding="utf-8")
    return target


def write_vtt(path: str | os.PathLike[str], cues: Sequence[CueLike]) -> Path:
    """Write ``cues`` as WebVTT (``WEBVTT`` header, ``00:00:01.000 --> 00:00:02.500``)."""
    blocks = [
        f"{_timestamp(c.start_s, '.')} --> {_timestamp(c.end_s, '.')}\n{c.text}\n" for c in cues
    ]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("WEBVTT\n\n" + "\n".join(blocks), encoding="utf-8")
    return target


# --------------------------------------------------------------------------- speech


def speak(
    text: str, *, voice: str = "en", rate: int = 16000, words_per_minute: int = 150
) -> np.ndarray:
    """``text`` spoken by espeak-ng with ``voice`` (``en``, ``es``, …): float32 mono samples
    in [-1, 1] at ``rate`` Hz. Deterministic: the same arguments give the same samples.
    Raises :class:`MissingDependencyError` (``apt-get install espeak-ng``) without espeak-ng."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise MissingDependencyError("espeak-ng", "apt-get install espeak-ng")
    with tempfile.TemporaryDirectory(prefix="tideflow-speak-") as tmp:
        wav_path = Path(tmp) / "speech.wav"
        command = [binary, "-v", voice, "-s", str(words_per_minute), "-w", str(wav_path), text]
        done = subprocess.run(command, capture_output=True, check=False)
        if done.returncode != 0 or not wav_path.exists():
            stderr = done.stderr.decode(errors="replace").strip()
            message = f"espeak-ng failed for voice {voice!r} (exit {done.returncode}): {stderr}"
            raise RuntimeError(message)
        with wave.open(str(wav_path), "rb") as wav:
            source_rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    samples = pcm.astype(np.float32) / 32768.0
    return samples if source_rate == rate else _resample(samples, source_rate, rate)


def _resample(samples: np.ndarray, source_rate: int, rate: int) -> np.ndarray:
    av = require("av", "video")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
    frame.sample_rate = source_rate
    frame.pts = 0
    frame.time_base = Fraction(1, source_rate)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


# --------------------------------------------------------------------------- video


def make_video(
    path: str | os.PathLike[str],
    *,
    duration_s: float,
    scenes: Sequence[SceneLike] = (),
    width: int = 320,
    height: int = 180,
    rate: int = 5,
    font: str | None = None,
    font_size: int | None = None,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    subtitles: Sequence[CueLike] = (),
    corrupt: bool = False,
    truncate: float | None = None,
    background: tuple[int, int, int] = _BACKGROUND,
    motion: bool = True,
    seed: int = 0,
) -> Path:
    """Write an MP4 to ``path`` (parents are created) and return the path.

    - Video: H.264 at ``rate`` fps, ``width`` × ``height``; each scene's lines are drawn
      top-left, white on ``background``, with ``font`` (default: :func:`font_for` each line)
      at ``font_size`` px (default: a ninth of the height, ≥ 18). A line wider than the
      frame is an error (break it with :func:`wrap_text`). With ``motion``, a progress bar
      grows along the bottom edge, so frames differ even while the text stays.
    - Audio (optional): ``audio``, float32 mono samples at ``audio_rate`` Hz, encoded as AAC
      and padded with silence to ``duration_s``.
    - Subtitles (optional): ``subtitles`` as an embedded ``mov_text`` stream tagged with the
      first cue's language.
    - ``corrupt``: instead, bytes that no decoder accepts (an MP4 signature, then ``seed``-ed
      noise). ``truncate``: cut the file to this fraction of its bytes (its index is at the
      front, so it probes as whole but its later part cannot be decoded).

    The same arguments give the same bytes (x264 runs single-threaded).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if corrupt:
        rng = random.Random(seed)
        noise = bytes(rng.randrange(256) for _ in range(4096))
        target.write_bytes(b"\x00\x00\x00\x18ftypmp42" + noise)
        return target
    if duration_s <= 0:
        raise ConfigError(f"make_video: duration_s must be > 0, got {duration_s!r}")
    if truncate is not None and not 0 < truncate < 1:
        raise ConfigError(f"make_video: truncate must be in (0, 1), got {truncate!r}")
    av = require("av", "video")
    frames = _render_frames(
        duration_s=duration_s,
        scenes=scenes,
        width=width,
        height=height,
        rate=rate,
        font=font,
        font_size=font_size or default_font_size(height),
        background=background,
        motion=motion,
    )
    options = {"movflags": "faststart"} if truncate is not None else {}
    with av.open(str(target), "w", options=options) as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "20", "g": str(2 * rate), "threads": "1"}
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=audio_rate, layout="mono")
        subtitle_stream = None
        if subtitles:
            subtitle_stream = container.add_stream("mov_text")
            subtitle_stream.codec_context.subtitle_header = _ASS_HEADER
            subtitle_stream.time_base = Fraction(1, 1000)
            language = subtitles[0].language
            subtitle_stream.metadata["language"] = _ISO639_2.get(language, language)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio_stream is not None and audio is not None:
            _encode_audio(
                container, audio_stream, audio, audio_rate=audio_rate, duration_s=duration_s
            )
        if subtitle_stream is not None:
            _encode_subtitles(container, subtitle_stream, subtitles)
    if truncate is not None:
        data = target.read_bytes()
        target.write_bytes(data[: int(len(data) * truncate)])
    return target


def _render_frames(
    *,
    duration_s: float,
    scenes: Sequence[SceneLike],
    width: int,
    height: int,
    rate: int,
    font: str | None,
    font_size: int,
    background: tuple[int, int, int],
    motion: bool,
) -> Iterator[Any]:
    """Draw every distinct slide first (so a line too wide fails before a file is written),
    then return the frames lazily."""
    image_mod = require("PIL.Image", "video")
    draw_mod = require("PIL.ImageDraw", "video")
    faces: dict[str, Any] = {}
    margin, top, step = width // 16, height // 8, round(font_size * 1.6)
    slides: dict[tuple[str, ...], Any] = {}
    for lines in [(), *(tuple(s.lines) for s in scenes)]:
        if lines in slides:
            continue
        slide = image_mod.new("RGB", (width, height), background)
        draw = draw_mod.Draw(slide)
        for row, line in enumerate(lines):
            path = font or font_for(line)
            face = faces.get(path) or faces.setdefault(path, _load_font(path, font_size))
            if margin + face.getlength(line) > width:
                message = (
                    f"make_video: the line {line!r} is wider than the {width}-px frame "
                    "(break it with tideflow.media.testing.wrap_text)"
                )
                raise ConfigError(message)
            draw.text((margin, top + row * step), line, font=face, fill=_TEXT_COLOUR)
        slides[lines] = slide

    def frames() -> Iterator[Any]:
        total = round(duration_s * rate)
        for index in range(total):
            t = index / rate
            lines = next((tuple(s.lines) for s in scenes if s.start_s <= t < s.end_s), ())
            image = slides[lines].copy()
            if motion:  # a progress bar along the bottom edge
                bar = (0, height - 4, round(width * index / total), height - 1)
                draw_mod.Draw(image).rectangle(bar, fill=_SHAPE_COLOUR)
            yield image

    return frames()


def _encode_audio(
    container: Any, stream: Any, audio: np.ndarray, *, audio_rate: int, duration_s: float
) -> None:
    av = require("av", "video")
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    total = round(duration_s * audio_rate)
    if len(samples) > total:
        message = (
            f"make_video: the audio lasts {len(samples) / audio_rate:.2f} s, "
            f"longer than the video's {duration_s:.2f} s"
        )
        raise ConfigError(message)
    samples = np.concatenate([samples, np.zeros(total - len(samples), np.float32)])
    size = stream.codec_context.frame_size or 1024
    for start in range(0, total, size):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[None, start : start + size]), format="fltp", layout="mono"
        )
        frame.sample_rate = audio_rate
        frame.pts = start
        frame.time_base = Fraction(1, audio_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _encode_subtitles(container: Any, stream: Any, cues: Sequence[CueLike]) -> None:
    subtitle_set = require("av.subtitles.subtitle", "video").SubtitleSet
    for cue in sorted(cues, key=lambda c: c.start_s):
        start, length = round(cue.start_s * 1000), round((cue.end_s - cue.start_s) * 1000)
        dialogue = "0,0,Default,,0,0,0,," + cue.text.replace("\n", "\\N")
        subtitle = subtitle_set.create(text=dialogue.encode(), start=0, end=length, pts=start)
        packet = stream.codec_context.encode_subtitle(subtitle)
        packet.stream = stream
        packet.time_base = stream.time_base
        packet.pts = packet.dts = start
        packet.duration = length
        container.mux(packet)
