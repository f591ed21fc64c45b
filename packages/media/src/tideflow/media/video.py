"""Video access with PyAV: open a local path or any ``pyarrow.fs`` URI, probe, cut into
shards, sample frames.

>>> info = probe("s3://KEY:SECRET@bucket/a.mp4?endpoint_override=h:9000")  # doctest: +SKIP
>>> shard_plan(info.duration_s, 10.0)                                      # doctest: +SKIP
[(0.0, 10.0), (10.0, 12.5)]

PyAV is imported on first use (extra ``video``); nothing here loads an OCR or speech model,
so decode actors stay light. Every failure is a :class:`~tideflow.media.errors.VideoError`
that names the video (credentials masked) and the cause.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tideflow.core.uri import redact
from tideflow.media._deps import require
from tideflow.media.errors import VideoError

__all__ = [
    "Frame",
    "VideoInfo",
    "open_container",
    "probe",
    "sample_frames",
    "shard_plan",
    "uri_name",
]


@dataclass(frozen=True)
class VideoInfo:
    """What probing a video found."""

    duration_s: float
    width: int
    height: int
    rate: float
    """Average frames per second of the video stream."""
    has_audio: bool = False
    """Whether the container has an audio stream."""
    subtitle_streams: int = 0
    """How many subtitle streams the container has."""


@dataclass(frozen=True)
class Frame:
    """A sampled frame: RGB pixels and the time span it stands for."""

    t: float
    """When it was sampled (seconds)."""
    t0: float
    """Start of the span of the video this frame represents."""
    t1: float
    """End of that span."""
    image: np.ndarray
    """H × W × 3, uint8, RGB."""


@contextlib.contextmanager
def open_container(uri: str) -> Iterator[Any]:
    """An open PyAV input container for a local path, ``file://`` or any ``pyarrow.fs`` URI
    (``s3://KEY:SECRET@bucket/key?endpoint_override=…``). Raises :class:`VideoError`."""
    av = require("av", "video")
    handle = None
    problem = None
    try:
        if "://" in uri and not uri.startswith("file://"):
            from pyarrow import fs as pafs

            filesystem, path = pafs.FileSystem.from_uri(uri)
            handle = filesystem.open_input_file(path)
            container = av.open(handle, "r")
        else:
            container = av.open(uri.removeprefix("file://"), "r")
    except Exception as error:  # any open/parse failure names the video and the cause
        problem = f"{type(error).__name__}: {redact(str(error))}"
        if _size(uri, handle) == 0:
            problem = "the file is empty (0 bytes)"
    if problem is not None:
        if handle is not None:
            handle.close()
        # Raised outside `except`: the cause's text may carry the raw URI, credentials included.
        raise VideoError(f"cannot open {redact(uri)!r} as a video: {problem}")
    try:
        yield container
    finally:
        container.close()
        if handle is not None:
            handle.close()


def _size(uri: str, handle: Any) -> int | None:
    """The size in bytes of the file a video URI names; ``None`` when it cannot be told."""
    try:
        if handle is not None:
            return int(handle.size())
        return os.path.getsize(uri.removeprefix("file://"))
    except (OSError, ValueError):
        return None


def probe(uri: str) -> VideoInfo:
    """Duration, size and frame rate of a video's first video stream, and whether it has
    audio and subtitle streams (:class:`VideoError` when it has no video stream, or cannot
    be read)."""
    with open_container(uri) as container:
        if not container.streams.video:
            raise VideoError(f"{redact(uri)!r} has no video stream")
        stream = container.streams.video[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        width = int(stream.codec_context.width or 0)
        height = int(stream.codec_context.height or 0)
        has_audio = bool(container.streams.audio)
        subtitle_streams = len(container.streams.subtitles)
    if not duration or duration <= 0 or not width or not height:
        raise VideoError(
            f"{redact(uri)!r}: expected a video with a duration and a frame size; got "
            f"duration={duration}, size={width}x{height}"
        )
    return VideoInfo(
        duration_s=duration,
        width=width,
        height=height,
        rate=rate,
        has_audio=has_audio,
        subtitle_streams=subtitle_streams,
    )


def shard_plan(duration_s: float, shard_seconds: float) -> list[tuple[float, float]]:
    """``[start, end)`` of each shard of a video: ``shard_seconds`` long, the last one
    shorter; at least one shard."""
    count = max(1, math.ceil(duration_s / shard_seconds - 1e-9))
    return [(i * shard_seconds, min(duration_s, (i + 1) * shard_seconds)) for i in range(count)]


def _scaled(frame: Any, max_side: int) -> np.ndarray:
    width, height = frame.width, frame.height
    scale = min(1.0, max_side / max(width, height))
    if scale < 1.0:
        return np.asarray(
            frame.to_ndarray(
                format="rgb24",
                width=max(2, int(width * scale)),
                height=max(2, int(height * scale)),
            )
        )
    return np.asarray(frame.to_ndarray(format="rgb24"))


def sample_frames(
    uri: str,
    start_s: float,
    end_s: float,
    *,
    duration_s: float,
    fps: float,
    keyframes: bool = False,
    max_side: int = 1280,
) -> list[Frame]:
    """The frames of ``[start_s, end_s)``: at ``(k + 0.5) / fps`` for every ``k`` whose time
    falls in the shard (each standing for its ``1/fps`` interval), or the keyframes (each
    standing for the time until the next one). Frames larger than ``max_side`` (longest
    side) are scaled down. Raises :class:`VideoError`."""
    out: list[Frame] = []
    problem = None
    with open_container(uri) as container:
        stream = container.streams.video[0]
        try:
            if keyframes:
                stream.codec_context.skip_frame = "NONKEY"
            if start_s > 0 and stream.time_base is not None:
                container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
            if keyframes:
                out = _keyframes(container, stream, start_s, end_s, max_side)
            else:
                out = _at_times(
                    container,
                    stream,
                    start_s=start_s,
                    end_s=end_s,
                    duration_s=duration_s,
                    fps=fps,
                    max_side=max_side,
                )
        except VideoError:
            raise
        except Exception as error:
            problem = f"{type(error).__name__}: {redact(str(error))}"
    if problem is not None:
        raise VideoError(
            f"cannot decode {redact(uri)!r} between {start_s:g} s and {end_s:g} s: {problem}"
        )
    return out


def _at_times(
    container: Any,
    stream: Any,
    *,
    start_s: float,
    end_s: float,
    duration_s: float,
    fps: float,
    max_side: int,
) -> list[Frame]:
    half = 0.5 / fps
    first = max(0, math.ceil(start_s * fps - 0.5 - 1e-9))
    targets = []
    k = first
    while (k + 0.5) / fps < end_s - 1e-9:
        targets.append((k + 0.5) / fps)
        k += 1
    out: list[Frame] = []
    previous = None
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        # The frame shown at time T is the last one whose time is <= T.
        while targets and frame.time > targets[0] + 1e-6:
            shown = previous if previous is not None else frame
            t = targets.pop(0)
            out.append(
                Frame(t, max(0.0, t - half), min(duration_s, t + half), _scaled(shown, max_side))
            )
        if not targets:
            break
        previous = frame
    if targets and previous is None:
        raise VideoError(
            f"decoded no frame between {start_s:g} s and {end_s:g} s of a "
            f"{duration_s:g} s video: the file ends early (truncated?)"
        )
    for t in targets:  # past the last frame: it stays on screen
        assert previous is not None
        out.append(
            Frame(t, max(0.0, t - half), min(duration_s, t + half), _scaled(previous, max_side))
        )
    return out


def _keyframes(
    container: Any, stream: Any, start_s: float, end_s: float, max_side: int
) -> list[Frame]:
    found: list[tuple[float, np.ndarray]] = []
    for frame in container.decode(stream):
        if frame.time is None or frame.time < start_s - 1e-6:
            continue
        if frame.time >= end_s - 1e-9:
            break
        found.append((float(frame.time), _scaled(frame, max_side)))
    out = []
    for i, (t, image) in enumerate(found):
        t1 = found[i + 1][0] if i + 1 < len(found) else end_s
        out.append(Frame(t, t, t1, image))
    return out


def uri_name(uri: str) -> str:
    """The last path part of a URI, without credentials or query."""
    return os.path.basename(redact(uri).split("?", 1)[0].rstrip("/"))
