"""PyAV probing, sharding and frame sampling on generated videos; the scoring helpers."""

from __future__ import annotations

import dataclasses

import pytest

from tideflow.media.video import probe, sample_frames, shard_plan
from tideflow_ocr.errors import VideoError
from tideflow_ocr.testdata import VideoSpec, character_error_rate, default_specs, make_video


@pytest.fixture(scope="module")
def news(tmp_path_factory) -> tuple[str, VideoSpec]:
    spec = default_specs(chinese=False)[0]
    path = make_video(spec, tmp_path_factory.mktemp("video") / spec.name)
    return str(path), spec


def test_probe_reads_duration_size_and_rate(news):
    path, spec = news
    info = probe(path)
    assert (info.width, info.height) == (spec.width, spec.height)
    assert info.duration_s == pytest.approx(spec.duration_s, abs=0.25)
    assert info.rate == pytest.approx(spec.rate)


def test_shards_cover_the_video_without_gaps():
    assert shard_plan(6.0, 2.5) == [(0.0, 2.5), (2.5, 5.0), (5.0, 6.0)]
    assert shard_plan(1.0, 10.0) == [(0.0, 1.0)]


def test_frames_are_sampled_at_the_middle_of_each_interval_of_their_shard(news):
    path, spec = news
    frames = sample_frames(path, 2.0, 4.0, duration_s=spec.duration_s, fps=1.0)
    assert [(f.t, f.t0, f.t1) for f in frames] == [(2.5, 2.0, 3.0), (3.5, 3.0, 4.0)]
    assert frames[0].image.shape == (spec.height, spec.width, 3)
    # 2.5 s is the scene without text, 3.5 s shows the weather: the frames differ.
    assert (frames[0].image != frames[1].image).any()


def test_keyframes_mode_returns_only_keyframes_standing_until_the_next(news):
    path, spec = news
    frames = sample_frames(
        path, 0.0, spec.duration_s, duration_s=spec.duration_s, fps=1.0, keyframes=True
    )
    assert [f.t for f in frames] == [0.0, 2.0, 4.0]  # a keyframe every 2 s (g = 2 × rate)
    assert [f.t1 for f in frames] == [2.0, 4.0, spec.duration_s]


def test_a_corrupt_file_fails_to_probe_with_an_error_naming_it(tmp_path):
    spec = next(s for s in default_specs(chinese=False) if s.corrupt)
    path = make_video(spec, tmp_path / spec.name)
    with pytest.raises(VideoError, match=r"zz-corrupt\.mp4.*as a video"):
        probe(str(path))


def test_a_truncated_file_probes_whole_but_its_late_shards_cannot_be_decoded(tmp_path):
    spec = next(s for s in default_specs(chinese=False) if s.truncate)
    path = str(make_video(spec, tmp_path / spec.name))
    info = probe(path)
    assert sample_frames(path, 0.0, 2.0, duration_s=info.duration_s, fps=1.0)
    with pytest.raises(VideoError, match=r"decode|no frame"):
        sample_frames(path, 4.0, 6.0, duration_s=info.duration_s, fps=1.0)


def test_a_video_on_s3_is_probed_and_decoded_through_pyarrow_fs(news, s3_server, tmp_path):
    path, spec = news
    bucket = s3_server.new_bucket("video")
    with (
        open(path, "rb") as src,
        s3_server.filesystem().open_output_stream(f"{bucket}/v/{spec.name}") as out,
    ):
        out.write(src.read())
    uri = s3_server.uri(bucket, f"v/{spec.name}")
    info = probe(uri)
    frames = sample_frames(uri, 0.0, 2.0, duration_s=info.duration_s, fps=1.0)
    assert [f.t for f in frames] == [0.5, 1.5]
    with pytest.raises(VideoError) as failure:
        probe(s3_server.uri(bucket, "v/missing.mp4"))
    assert s3_server.secret_key not in str(failure.value)


def test_character_error_rate_counts_edits_over_the_expected_length():
    assert character_error_rate("hello world", "hello world") == 0.0
    assert character_error_rate("hello world", "helo world") == pytest.approx(1 / 11)
    assert character_error_rate("a\nb", "a b") == 0.0  # line breaks count as spaces
    assert character_error_rate("abc", "") == 1.0


def test_generated_specs_know_their_truth():
    spec = dataclasses.replace(default_specs(chinese=False)[0])
    assert spec.truth()[0] == ("Breaking news tonight", 0.0, 2.0)
    assert spec.expected_text().splitlines() == [
        "Breaking news tonight",
        "Markets rally",
        "Weather: sunny and warm",
    ]
