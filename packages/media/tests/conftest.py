"""Shared fixtures: small generated videos (PyAV, H.264) whose content says what time it is.

Second ``k`` of a generated video is one flat colour, ``SHADE * k`` in every channel, so a
sampled frame tells which second it came from. No Ray: the sources are driven through their
contract (discover, open, read, snapshot) with a :class:`JobContext`.

Helper modules of this folder (``_media_helpers``) import by plain name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

SHADE = 60
"""The grey level step per second of a generated video."""

WIDTH, HEIGHT, RATE = 64, 48, 10


def write_video(
    path: Path,
    *,
    seconds: int = 3,
    audio: bool = False,
    subtitles: bool = False,
) -> Path:
    """An H.264 video of ``seconds`` s at 10 fps, 64 × 48, a keyframe every second; with a
    silent AAC track and an SRT subtitle track when asked."""
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    srt = None
    if subtitles:
        cues = path.with_suffix(".srt")
        cues.write_text("1\n00:00:00,500 --> 00:00:01,500\nhello\n\n", encoding="utf-8")
        srt = av.open(str(cues))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.gop_size = RATE
        sound = out.add_stream("aac", rate=16000) if audio else None
        text = out.add_stream_from_template(srt.streams.subtitles[0]) if srt else None
        for i in range(seconds * RATE):
            image = np.full((HEIGHT, WIDTH, 3), SHADE * (i // RATE), np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode())
        if sound is not None:
            silence = np.zeros((1, 1024), np.float32)
            for i in range(seconds * 16000 // 1024):
                frame = av.AudioFrame.from_ndarray(silence, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, i * 1024
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
        if srt is not None and text is not None:
            for packet in srt.demux(srt.streams.subtitles[0]):
                if packet.dts is not None:
                    packet.stream = text
                    out.mux(packet)
    if srt is not None:
        srt.close()
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """``make_video("a.mp4", seconds=2)``: a generated video under this test's folder."""

    def make(name: str, **options: object) -> Path:
        return write_video(tmp_path / name, **options)  # type: ignore[arg-type]

    return make
