"""Fixtures made on the fly for the media tests: rendered slides, small mp4 files (H.264
video, optional AAC audio and mov_text subtitles), espeak-ng speech, and tables shaped like
the ones the operators exchange."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
from av.subtitles.subtitle import SubtitleSet
from PIL import Image, ImageDraw, ImageFont

from tideflow.media.frames import FRAME_TYPE
from tideflow.media.sources import SHARD_SCHEMA

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

FRAMES_SCHEMA = (
    SHARD_SCHEMA.append(pa.field("frames", pa.list_(FRAME_TYPE)))
    .append(pa.field("pixels", pa.list_(pa.binary())))
    .append(pa.field("frame_h", pa.int32()))
    .append(pa.field("frame_w", pa.int32()))
    .append(pa.field("error", pa.string()))
)

_ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, \
Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


def render_slide(text: str, size: tuple[int, int] = (320, 180), font_size: int = 18) -> np.ndarray:
    """White text (lines split on ``\\n``) on a dark blue-grey background, H × W × 3 RGB."""
    image = Image.new("RGB", size, (20, 24, 40))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, font_size)
    y = 16
    for line in text.split("\n"):
        draw.text((14, y), line, font=font, fill=(255, 255, 255))
        y += font_size + 8
    return np.asarray(image)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def add_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noisy = image + np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    fps: int,
    *,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    subtitles: Sequence[tuple[float, float, str]] = (),
    subtitle_language: str | None = "eng",
) -> Path:
    """An mp4 of ``frames`` (H.264) at ``fps``, with ``audio`` (float32 mono, AAC) and
    ``subtitles`` (``(start_s, end_s, ass_text)``, mov_text) when given."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio is not None:
            sound = out.add_stream("aac", rate=audio_rate)
            sound.layout = "mono"
        text = None
        if subtitles:
            text = out.add_stream("mov_text")
            text.codec_context.subtitle_header = _ASS_HEADER
            if subtitle_language:
                text.metadata["language"] = subtitle_language
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None and audio is not None:
            samples = audio.astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = av.AudioFrame.from_ndarray(
                    samples[None, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate = audio_rate
                chunk.pts = start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
        if text is not None:
            base = text.time_base
            assert base is not None, "the container sets the time base on its first mux"
            for start_s, end_s, dialogue in subtitles:
                line = f"0,0,Default,,0,0,0,,{dialogue}".encode()
                cue = SubtitleSet.create(
                    line, 0, round((end_s - start_s) / base), pts=round(start_s / base)
                )
                packet = text.codec_context.encode_subtitle(cue)
                packet.stream = text
                out.mux(packet)
    return path


def sample_at_fps(path: Path, fps: float) -> tuple[list[np.ndarray], list[dict[str, float]]]:
    """The frames shown at ``(k + 0.5) / fps`` and the span ``[k / fps, (k + 1) / fps)``
    each stands for — what a 1-fps decode hands the dedup operator."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        assert stream.duration is not None and stream.time_base is not None
        duration = float(stream.duration * stream.time_base)
    images, spans = [], []
    k = 0
    while (k + 0.5) / fps < duration:
        t = (k + 0.5) / fps
        shown = [image for time, image in decoded if time <= t + 1e-6][-1]
        images.append(shown)
        spans.append({"t": t, "t0": k / fps, "t1": min(duration, (k + 1) / fps)})
        k += 1
    return images, spans


def shard_row(uri: str, start_s: float, end_s: float, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "video_id": values.pop("video_id", Path(uri).stem),
        "uri": uri,
        "priority": 0,
        "shard": 0,
        "shards": 1,
        "start_s": start_s,
        "end_s": end_s,
        "duration_s": end_s,
        "width": 320,
        "height": 180,
    }
    row.update(values)
    return row


def frames_row(
    images: Sequence[np.ndarray],
    spans: Sequence[dict[str, float]],
    *,
    uri: str = "/videos/v.mp4",
    error: str | None = None,
) -> dict[str, Any]:
    """A row shaped like DecodeFrames' output."""
    height, width = images[0].shape[:2] if images else (0, 0)
    row = shard_row(uri, spans[0]["t0"] if spans else 0.0, spans[-1]["t1"] if spans else 0.0)
    row.update(
        frames=list(spans),
        pixels=[np.ascontiguousarray(image).tobytes() for image in images],
        frame_h=height,
        frame_w=width,
        error=error,
    )
    return row


def frames_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=FRAMES_SCHEMA)


def speech(text: str, path: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng, float32 mono at 16 kHz."""
    espeak = shutil.which("espeak-ng")
    assert espeak is not None, "espeak-ng is not installed (apt-get install espeak-ng)"
    subprocess.run([espeak, "-w", str(path), text], check=True, capture_output=True)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's word count (punctuation and case
    ignored)."""

    def words(text: str) -> list[str]:
        cleaned = "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text)
        return cleaned.split()

    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(1, len(ref))
