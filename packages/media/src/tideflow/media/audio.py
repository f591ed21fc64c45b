"""A video's sound as speech models want it: float32 mono samples at 16 kHz (PyAV).

>>> samples = read_audio("s3://KEY:SECRET@bucket/talk.mp4", 60.0, 90.0)  # doctest: +SKIP
>>> samples.dtype, len(samples) / SAMPLE_RATE                            # doctest: +SKIP
(dtype('float32'), 30.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tideflow.core.uri import redact
from tideflow.media._deps import require
from tideflow.media.errors import VideoError

__all__ = ["SAMPLE_RATE", "has_audio", "read_audio"]

SAMPLE_RATE = 16_000
"""Samples per second of what :func:`read_audio` returns (what Whisper expects)."""


def has_audio(uri: str) -> bool:
    """Whether the video has an audio stream (:class:`VideoError` when it cannot be opened)."""
    from tideflow.media.video import open_container

    with open_container(uri) as container:
        return bool(container.streams.audio)


def read_audio(uri: str, start_s: float = 0.0, end_s: float | None = None) -> np.ndarray:
    """The first audio stream of ``[start_s, end_s)`` (to the end when ``end_s`` is
    ``None``) as float32 mono samples at 16 kHz, channels averaged. An empty array when the
    video has no audio stream or the span is empty; :class:`VideoError` naming the video
    when it cannot be opened or decoded."""
    if start_s < 0:
        raise ValueError(f"start_s must be ≥ 0; got {start_s}")
    if end_s is not None and end_s <= start_s:
        return np.zeros(0, np.float32)
    from tideflow.media.video import open_container

    av = require("av", "video")
    samples = np.zeros(0, np.float32)
    problem = None
    with open_container(uri) as container:
        if not container.streams.audio:
            return samples
        try:
            samples = _decode(av, container, container.streams.audio[0], start_s, end_s)
        except Exception as error:  # decode failures name the video, credentials masked
            problem = f"{type(error).__name__}: {redact(str(error))}"
    if problem is not None:
        until = "the end" if end_s is None else f"{end_s:g} s"
        message = f"cannot decode the audio of {redact(uri)!r} from {start_s:g} s to {until}: "
        raise VideoError(message + problem)
    return samples


def _decode(
    av: Any, container: Any, stream: Any, start_s: float, end_s: float | None
) -> np.ndarray:
    if start_s > 0 and stream.time_base is not None:
        container.seek(math.floor(start_s / stream.time_base), stream=stream, backward=True)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    first_time: float | None = None
    for frame in container.decode(stream):
        if first_time is None:
            first_time = float(frame.time) if frame.time is not None else start_s
        if end_s is not None and frame.time is not None and frame.time >= end_s:
            break
        chunks.extend(_mono(out) for out in resampler.resample(frame))
    chunks.extend(_mono(out) for out in resampler.resample(None))
    if not chunks or first_time is None:
        return np.zeros(0, np.float32)
    samples = np.concatenate(chunks)
    if first_time > start_s:  # the sound starts late: silence keeps sample times absolute
        lead = np.zeros(round((first_time - start_s) * SAMPLE_RATE), np.float32)
        samples = np.concatenate([lead, samples])
        first_time = start_s
    skip = max(0, round((start_s - first_time) * SAMPLE_RATE))
    stop = None if end_s is None else skip + round((end_s - start_s) * SAMPLE_RATE)
    return np.ascontiguousarray(samples[skip:stop], dtype=np.float32)


def _mono(frame: Any) -> np.ndarray:
    return np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)
