"""DecodeFrames: shard rows in, the same rows with their frames out; errors as data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tideflow.media import FRAME_TYPE, SHARD_SCHEMA, ConfigError, DecodeFrames, frame_images

pytest.importorskip("av")

SHADE = 60  # conftest: second k of a generated video is grey level SHADE * k


def shard_rows(uri: str, spans: list[tuple[float, float]], duration_s: float) -> pa.Table:
    rows = [
        {
            "video_id": "v",
            "uri": uri,
            "priority": 0,
            "shard": i,
            "shards": len(spans),
            "start_s": start,
            "end_s": end,
            "duration_s": duration_s,
            "width": 64,
            "height": 48,
        }
        for i, (start, end) in enumerate(spans)
    ]
    return pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)


def test_each_shard_gets_its_frames_times_and_pixels(make_video):
    uri = str(make_video("a.mp4", seconds=3))
    out = DecodeFrames(fps=1.0)(shard_rows(uri, [(0.0, 2.0), (2.0, 3.0)], 3.0))
    assert out.schema.names == [
        *SHARD_SCHEMA.names,
        "frames",
        "pixels",
        "frame_h",
        "frame_w",
        "error",
    ]
    assert out.schema.field("frames").type == pa.list_(FRAME_TYPE)
    first, second = out.to_pylist()
    assert first["frames"] == [{"t": 0.5, "t0": 0.0, "t1": 1.0}, {"t": 1.5, "t0": 1.0, "t1": 2.0}]
    assert second["frames"] == [{"t": 2.5, "t0": 2.0, "t1": 3.0}]
    assert (first["frame_h"], first["frame_w"], first["error"]) == (48, 64, None)
    images = frame_images(first)
    assert [image.shape for image in images] == [(48, 64, 3)] * 2
    assert images[0].dtype == np.uint8
    assert [round(float(image.mean()) / SHADE) for image in images] == [0, 1]


def test_frames_are_sampled_at_fps_and_scaled_to_max_side(make_video):
    uri = str(make_video("a.mp4", seconds=2))
    row = DecodeFrames(fps=2.0, max_side=32)(shard_rows(uri, [(0.0, 1.0)], 2.0)).to_pylist()[0]
    assert [f["t"] for f in row["frames"]] == [0.25, 0.75]
    assert (row["frame_h"], row["frame_w"]) == (24, 32)
    assert frame_images(row)[0].shape == (24, 32, 3)


def test_keyframes_mode_decodes_only_keyframes(make_video):
    uri = str(make_video("a.mp4", seconds=3))
    row = DecodeFrames(keyframes=True)(shard_rows(uri, [(0.0, 3.0)], 3.0)).to_pylist()[0]
    assert [(f["t"], f["t1"]) for f in row["frames"]] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]


def test_a_shard_that_cannot_be_decoded_carries_the_error_and_the_others_go_on(
    tmp_path, make_video
):
    good = str(make_video("a.mp4", seconds=1))
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"broken" * 100)
    table = pa.concat_tables(
        [shard_rows(str(bad), [(0.0, 1.0)], 1.0), shard_rows(good, [(0.0, 1.0)], 1.0)]
    )
    broken, fine = DecodeFrames(retries=1)(table).to_pylist()
    assert broken["error"].startswith("decode: VideoError: cannot open")
    assert "broken.mp4" in broken["error"]
    assert (broken["frames"], broken["pixels"], broken["frame_h"]) == ([], [], 0)
    assert fine["error"] is None and len(fine["frames"]) == 1


def test_a_row_that_arrives_with_an_error_is_passed_on_undecoded(make_video):
    uri = str(make_video("a.mp4", seconds=1))
    table = shard_rows(uri, [(0.0, 1.0)], 1.0).append_column("error", pa.array(["probe: no"]))
    row = DecodeFrames()(table).to_pylist()[0]
    assert (row["error"], row["frames"]) == ("probe: no", [])


def test_extra_columns_of_the_input_are_kept(make_video):
    uri = str(make_video("a.mp4", seconds=1))
    table = shard_rows(uri, [(0.0, 1.0)], 1.0).append_column("lang", pa.array(["en"]))
    assert DecodeFrames()(table).column("lang").to_pylist() == ["en"]


@pytest.mark.parametrize(
    ("options", "field"),
    [({"fps": 0}, "fps"), ({"max_side": 8}, "max_side"), ({"retries": -1}, "retries")],
)
def test_bad_settings_are_refused_naming_the_field(options, field):
    with pytest.raises(ConfigError, match=f"DecodeFrames.{field}"):
        DecodeFrames(**options)
