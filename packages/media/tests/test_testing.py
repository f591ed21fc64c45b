"""``tideflow.media.testing``: the generated videos hold exactly what they were told to."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from tideflow.media.errors import ConfigError, MissingDependencyError
from tideflow.media.testing import (
    CJK_FONT,
    LATIN_FONT,
    Cue,
    Scene,
    cjk_font_available,
    font_for,
    make_video,
    speak,
    wrap_text,
    write_srt,
    write_vtt,
)


@pytest.fixture
def espeak() -> None:
    """No skip: `make test` installs it (make system-deps); without it the test fails."""
    assert shutil.which("espeak-ng"), "needs espeak-ng: apt-get install espeak-ng"


@pytest.fixture
def cjk_font() -> None:
    assert cjk_font_available(), "needs fonts-wqy-microhei: apt-get install fonts-wqy-microhei"


needs_espeak = pytest.mark.usefixtures("espeak")
needs_cjk_font = pytest.mark.usefixtures("cjk_font")


def _frame_at(path: Path, t: float) -> np.ndarray:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time >= t:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"no frame at {t} s in {path}")


def test_video_has_the_asked_size_rate_and_length(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", duration_s=3.0, width=320, height=180, rate=5)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(video=0))
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 180)
        assert stream.average_rate == 5
        assert len(frames) == 15
        assert not container.streams.audio
        assert not container.streams.subtitles


def test_text_is_drawn_only_while_its_scene_lasts(tmp_path: Path) -> None:
    scene = Scene(start_s=1.0, end_s=2.0, lines=("Harbor bridge",))
    path = make_video(tmp_path / "a.mp4", duration_s=3.0, scenes=[scene], motion=False)
    bright = [int((_frame_at(path, t)[:60] > 200).sum()) for t in (0.0, 1.2, 2.4)]
    assert bright[0] == 0
    assert bright[1] > 200
    assert bright[2] == 0


def test_same_arguments_give_the_same_bytes(tmp_path: Path) -> None:
    scene = Scene(start_s=0.0, end_s=2.0, lines=("Same bytes",))
    cue = Cue(start_s=0.5, end_s=1.5, text="Hello")
    a = make_video(tmp_path / "a.mp4", duration_s=2.0, scenes=[scene], subtitles=[cue])
    b = make_video(tmp_path / "b.mp4", duration_s=2.0, scenes=[scene], subtitles=[cue])
    assert a.read_bytes() == b.read_bytes()


def test_a_line_wider_than_the_frame_is_refused_before_writing(tmp_path: Path) -> None:
    scene = Scene(start_s=0.0, end_s=1.0, lines=("far too long a line for a small frame",))
    with pytest.raises(ConfigError, match="wrap_text"):
        make_video(tmp_path / "a.mp4", duration_s=1.0, scenes=[scene])
    assert not (tmp_path / "a.mp4").exists()


def test_embedded_subtitles_come_back_with_their_times_and_language(tmp_path: Path) -> None:
    cues = [
        Cue(start_s=0.5, end_s=1.5, text="Hola, café", language="es"),
        Cue(start_s=2.0, end_s=3.5, text="dos\nlíneas", language="es"),
    ]
    path = make_video(tmp_path / "a.mp4", duration_s=4.0, subtitles=cues)
    got = []
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        assert stream.codec_context.name == "mov_text"
        assert stream.metadata["language"] == "spa"
        for packet in container.demux(stream):
            for subtitle in packet.decode():
                start = float(packet.pts * packet.time_base)
                end = start + float(packet.duration * packet.time_base)
                got.append((start, end, subtitle.dialogue.decode()))
    assert got == [(0.5, 1.5, "Hola, café"), (2.0, 3.5, "dos\nlíneas")]


def test_audio_is_aac_and_lasts_the_whole_video(tmp_path: Path) -> None:
    rate = 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    path = make_video(tmp_path / "a.mp4", duration_s=3.0, audio=tone, audio_rate=rate)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert abs(len(samples) / rate - 3.0) < 0.1
    loud = np.abs(samples[: rate // 2]).max()
    quiet = np.abs(samples[2 * rate :]).max()
    assert loud > 0.2
    assert quiet < 0.02


def test_audio_longer_than_the_video_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="longer than the video"):
        make_video(tmp_path / "a.mp4", duration_s=1.0, audio=np.zeros(32000, np.float32))


def test_corrupt_video_cannot_be_opened(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", duration_s=0.0, corrupt=True)
    with pytest.raises(av.error.FFmpegError):
        av.open(str(path)).close()


def test_truncated_video_probes_but_is_cut(tmp_path: Path) -> None:
    scene = Scene(start_s=0.0, end_s=4.0, lines=("Half gone",))
    whole = make_video(tmp_path / "whole.mp4", duration_s=4.0, scenes=[scene])
    cut = make_video(tmp_path / "cut.mp4", duration_s=4.0, scenes=[scene], truncate=0.5)
    assert cut.stat().st_size == pytest.approx(whole.stat().st_size / 2, rel=0.05)
    with av.open(str(cut)) as container:
        assert container.streams.video[0].frames == 20


def test_srt_and_vtt_are_written_in_their_formats(tmp_path: Path) -> None:
    cues = [Cue(start_s=1.0, end_s=2.5, text="One"), Cue(start_s=61.25, end_s=62.0, text="Two")]
    srt = write_srt(tmp_path / "a.srt", cues).read_text(encoding="utf-8")
    vtt = write_vtt(tmp_path / "a.en.vtt", cues).read_text(encoding="utf-8")
    assert srt == (
        "1\n00:00:01,000 --> 00:00:02,500\nOne\n\n2\n00:01:01,250 --> 00:01:02,000\nTwo\n"
    )
    assert vtt == (
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nOne\n\n00:01:01.250 --> 00:01:02.000\nTwo\n"
    )


def test_a_cue_must_end_after_it_starts() -> None:
    with pytest.raises(ConfigError, match="start_s < end_s"):
        Cue(start_s=2.0, end_s=1.0, text="backwards")


def test_wrap_text_keeps_every_word_and_fits_the_frame(tmp_path: Path) -> None:
    text = "The Varnholt ferry carries 340 passengers across Lake Emmer"
    lines = wrap_text(text, width=320)
    assert len(lines) > 1
    assert " ".join(lines) == text
    scene = Scene(start_s=0.0, end_s=1.0, lines=lines)
    make_video(tmp_path / "a.mp4", duration_s=0.2, scenes=[scene])  # none refused as too wide


@needs_cjk_font
def test_chinese_text_is_drawn_with_the_cjk_font(tmp_path: Path) -> None:
    assert font_for("青石镇图书馆") == CJK_FONT
    assert font_for("Harbor") == LATIN_FONT
    lines = wrap_text("青石镇图书馆每周三晚上开放到九点半，藏书四万册", width=320)
    assert len(lines) == 2
    assert "".join(lines) == "青石镇图书馆每周三晚上开放到九点半，藏书四万册"
    scene = Scene(start_s=0.0, end_s=1.0, lines=lines)
    path = make_video(tmp_path / "zh.mp4", duration_s=1.0, scenes=[scene], motion=False)
    assert int((_frame_at(path, 0.0) > 200).sum()) > 500


@needs_espeak
def test_speak_gives_deterministic_mono_samples_at_the_asked_rate() -> None:
    first = speak("The ferry leaves at noon", rate=16000)
    again = speak("The ferry leaves at noon", rate=16000)
    assert first.dtype == np.float32
    assert first.ndim == 1
    assert 1.0 < len(first) / 16000 < 4.0
    assert np.abs(first).max() > 0.1
    assert np.array_equal(first, again)


@needs_espeak
def test_speak_in_spanish_differs_from_english() -> None:
    assert not np.array_equal(speak("hola", voice="es"), speak("hola", voice="en"))


def test_speak_without_espeak_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install espeak-ng"):
        speak("hello")
