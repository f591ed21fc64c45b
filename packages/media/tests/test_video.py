"""Probing, sharding and frame sampling with PyAV on generated videos; what importing the
package costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tideflow.media import VideoError, VideoInfo, probe, sample_frames, shard_plan, uri_name

pytest.importorskip("av")

SHADE = 60  # conftest: second k of a generated video is grey level SHADE * k


def test_probe_reads_duration_size_and_rate(make_video):
    info = probe(str(make_video("a.mp4", seconds=3)))
    assert (info.width, info.height) == (64, 48)
    assert info.duration_s == pytest.approx(3.0, abs=0.15)
    assert info.rate == pytest.approx(10.0)


def test_probe_finds_no_audio_or_subtitles_in_a_bare_video(make_video):
    info = probe(str(make_video("a.mp4", seconds=2)))
    assert (info.has_audio, info.subtitle_streams) == (False, 0)


def test_probe_finds_the_audio_and_subtitle_streams(make_video):
    info = probe(str(make_video("a.mkv", seconds=2, audio=True, subtitles=True)))
    assert (info.has_audio, info.subtitle_streams) == (True, 1)


def test_video_info_made_without_streams_has_no_audio_or_subtitles():
    info = VideoInfo(duration_s=1.0, width=2, height=2, rate=25.0)
    assert (info.has_audio, info.subtitle_streams) == (False, 0)


def test_shards_cover_the_video_without_gaps():
    assert shard_plan(6.0, 2.5) == [(0.0, 2.5), (2.5, 5.0), (5.0, 6.0)]
    assert shard_plan(1.0, 10.0) == [(0.0, 1.0)]


def test_frames_are_sampled_at_the_middle_of_each_interval_of_their_shard(make_video):
    path = str(make_video("a.mp4", seconds=3))
    frames = sample_frames(path, 1.0, 3.0, duration_s=3.0, fps=1.0)
    assert [(f.t, f.t0, f.t1) for f in frames] == [(1.5, 1.0, 2.0), (2.5, 2.0, 3.0)]
    assert frames[0].image.shape == (48, 64, 3)
    assert [round(float(f.image.mean()) / SHADE) for f in frames] == [1, 2]


def test_large_frames_are_scaled_down_to_max_side(make_video):
    path = str(make_video("a.mp4", seconds=2))
    frames = sample_frames(path, 0.0, 1.0, duration_s=2.0, fps=1.0, max_side=32)
    assert frames[0].image.shape == (24, 32, 3)


def test_keyframes_mode_returns_only_keyframes_standing_until_the_next(make_video):
    path = str(make_video("a.mp4", seconds=3))
    frames = sample_frames(path, 0.0, 3.0, duration_s=3.0, fps=1.0, keyframes=True)
    assert [(f.t, f.t1) for f in frames] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]


def test_a_file_that_is_not_a_video_fails_to_probe_with_an_error_naming_it(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match=r"notes\.mp4.*as a video"):
        probe(str(path))


def test_an_empty_file_fails_to_probe_saying_it_is_empty(tmp_path):
    path = tmp_path / "blank.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoError, match=r"blank\.mp4.*the file is empty \(0 bytes\)"):
        probe(str(path))
    with pytest.raises(VideoError, match=r"the file is empty"):
        probe(path.as_uri())


def test_a_file_without_a_video_stream_fails_to_probe(tmp_path):
    import av
    import numpy as np

    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=16000)
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            out.mux(sound.encode(frame))
        out.mux(sound.encode())
    with pytest.raises(VideoError, match="no video stream"):
        probe(str(path))


def test_errors_and_names_never_show_credentials():
    uri = "s3://KEY:SECRET@bucket/dir/a.mp4?endpoint_override=127.0.0.1:1&secret_key=S"
    assert uri_name(uri) == "a.mp4"
    with pytest.raises(VideoError) as failure:
        probe(uri)
    assert "SECRET" not in str(failure.value) and "=S" not in str(failure.value)


def test_importing_the_package_loads_no_decoder_or_model():
    code = (
        "import sys, tideflow.media as m; m.VideoFolderSource; m.SHARD_SCHEMA; "
        "heavy = {'av', 'rapidocr', 'onnxruntime', 'PIL'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
