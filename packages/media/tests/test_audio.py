"""Audio as speech models want it: 16 kHz mono float32, cut to a span of the video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _media_helpers import write_video

from tideflow.media.audio import SAMPLE_RATE, has_audio, read_audio
from tideflow.media.errors import VideoError


def _frames(seconds: int) -> list[np.ndarray]:
    return [np.full((48, 64, 3), 60 * (i % 4), np.uint8) for i in range(seconds * 2)]


@pytest.fixture(scope="module")
def two_tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of video whose sound is 440 Hz for 2 s, then 880 Hz for 2 s (AAC, 44.1 kHz)."""
    rate = 44_100
    t = np.arange(4 * rate) / rate
    tone = np.where(t < 2.0, np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 880 * t))
    path = tmp_path_factory.mktemp("audio") / "tones.mp4"
    return write_video(path, _frames(4), fps=2, audio=(0.5 * tone), audio_rate=rate)


def _pitch(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


def test_the_whole_track_is_16_khz_mono_float32(two_tones: Path) -> None:
    samples = read_audio(str(two_tones))
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert len(samples) / SAMPLE_RATE == pytest.approx(4.0, abs=0.05)
    rms = float(np.sqrt(np.mean(samples[SAMPLE_RATE // 2 : SAMPLE_RATE * 3 // 2] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # a sine of amplitude 0.5


def test_a_span_starts_and_ends_where_asked(two_tones: Path) -> None:
    samples = read_audio(str(two_tones), 1.5, 2.5)
    assert len(samples) == SAMPLE_RATE
    half = SAMPLE_RATE // 2
    assert _pitch(samples[: half - 800]) == pytest.approx(440, abs=10)
    assert _pitch(samples[half + 800 :]) == pytest.approx(880, abs=10)


def test_a_span_past_the_end_is_cut_short(two_tones: Path) -> None:
    samples = read_audio(str(two_tones), 3.5, 10.0)
    assert len(samples) / SAMPLE_RATE == pytest.approx(0.5, abs=0.05)


def test_an_empty_span_has_no_samples(two_tones: Path) -> None:
    assert len(read_audio(str(two_tones), 2.0, 2.0)) == 0


def test_a_video_without_audio_has_no_samples(tmp_path: Path) -> None:
    video = write_video(tmp_path / "silent.mp4", _frames(2), fps=2)
    assert not has_audio(str(video))
    samples = read_audio(str(video))
    assert samples.dtype == np.float32
    assert len(samples) == 0


def test_has_audio_sees_the_track(two_tones: Path) -> None:
    assert has_audio(str(two_tones))


def test_a_file_that_is_not_a_video_is_a_video_error_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match=r"junk\.mp4"):
        read_audio(str(junk))
