"""The video sources through their contract, without Ray: discover, open, read, snapshot,
and a rerun from the snapshot."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from tideflow.core.testing import FakeClock
from tideflow.media import SHARD_SCHEMA, ConfigError, VideoFolderSource, parse_message
from tideflow.streaming.connectors import JobContext

pytest.importorskip("av")


def context(tmp_path, run: int = 1) -> JobContext:
    return JobContext(job_id="job", run=run, job_uri=str(tmp_path / "job"))


def drain(reader, max_rows: int = 1) -> list[tuple[str, int]]:
    """(video, shard) of every row the reader has now."""
    out = []
    while (table := reader.read(max_rows)) is not None:
        assert table.schema == SHARD_SCHEMA
        out += [(r["video_id"], r["shard"]) for r in table.to_pylist()]
    return out


def read_all(source, ctx) -> list[tuple[str, int]]:
    rows = []
    for split in source.discover(ctx):
        rows += drain(source.open(split, None, ctx))
    return rows


# -- bounded ------------------------------------------------------------------------------


def test_a_folder_is_read_as_the_shards_of_each_video_in_name_order(tmp_path, make_video):
    make_video("videos/b.mp4", seconds=2)
    make_video("videos/a.mkv", seconds=3)
    (tmp_path / "videos" / "notes.txt").write_text("not a video")
    source = VideoFolderSource(uri=str(tmp_path / "videos"), shard_seconds=1.5)
    table = source.open(source.discover(context(tmp_path))[0], None, context(tmp_path)).read(9)
    rows = table.to_pylist()
    assert [(r["video_id"], r["shard"], r["shards"]) for r in rows] == [
        ("a.mkv", 0, 2),
        ("a.mkv", 1, 2),
        ("b.mp4", 0, 2),
        ("b.mp4", 1, 2),
    ]
    assert (rows[1]["start_s"], rows[1]["end_s"]) == (1.5, pytest.approx(3.0, abs=0.15))
    assert (rows[0]["width"], rows[0]["height"]) == (64, 48)
    assert rows[0]["uri"] == str(tmp_path / "videos" / "a.mkv")


def test_the_listing_is_pinned_at_the_first_run(tmp_path, make_video):
    make_video("videos/a.mp4", seconds=1)
    source = VideoFolderSource(uri=str(tmp_path / "videos"))
    assert read_all(source, context(tmp_path)) == [("a.mp4", 0)]
    make_video("videos/b.mp4", seconds=1)
    assert read_all(source, context(tmp_path, run=2)) == [("a.mp4", 0)]
    pinned = json.loads((tmp_path / "job" / "videos.json").read_text())
    assert pinned == {"videos": ["a.mp4"]}


def test_a_listing_pinned_by_the_ocr_app_before_is_still_read(tmp_path, make_video):
    make_video("videos/a.mp4", seconds=1)
    make_video("videos/b.mp4", seconds=1)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "ocr-videos.json").write_text(json.dumps({"videos": ["b.mp4"]}))
    source = VideoFolderSource(uri=str(tmp_path / "videos"))
    assert read_all(source, context(tmp_path, run=2)) == [("b.mp4", 0)]


def test_videos_are_split_into_groups_of_videos_per_split(tmp_path, make_video):
    for name in ("a", "b", "c"):
        make_video(f"videos/{name}.mp4", seconds=1)
    source = VideoFolderSource(uri=str(tmp_path / "videos"), videos_per_split=2)
    splits = source.discover(context(tmp_path))
    assert [s.info["videos"] for s in splits] == [["a.mp4", "b.mp4"], ["c.mp4"]]


def test_a_rerun_from_a_snapshot_neither_skips_nor_repeats_a_shard(tmp_path, make_video):
    make_video("videos/a.mp4", seconds=3)
    make_video("videos/b.mp4", seconds=2)
    source = VideoFolderSource(uri=str(tmp_path / "videos"), shard_seconds=1.0)
    ctx = context(tmp_path)
    split = source.discover(ctx)[0]
    first = source.open(split, None, ctx)
    before = [(r["video_id"], r["shard"]) for r in first.read(2).to_pylist()]
    state = json.loads(json.dumps(first.snapshot()))  # what a checkpoint keeps
    first.read(1)  # read after the snapshot: lost in the crash
    again = source.open(split, state, context(tmp_path, run=2))
    assert [*before, *drain(again)] == [
        ("a.mp4", 0),
        ("a.mp4", 1),
        ("a.mp4", 2),
        ("b.mp4", 0),
        ("b.mp4", 1),
    ]
    assert again.finished


def test_a_video_that_cannot_be_probed_becomes_a_dead_letter_and_the_rest_go_on(
    tmp_path, make_video
):
    make_video("videos/b.mp4", seconds=1)
    (tmp_path / "videos" / "a.mp4").write_bytes(b"broken" * 100)
    source = VideoFolderSource(uri=f"file://{tmp_path / 'videos'}")
    reader = source.open(source.discover(context(tmp_path))[0], None, context(tmp_path))
    assert drain(reader) == [("b.mp4", 0)]
    [dead] = reader.dead_letters()
    assert dead["record"] == {
        "video_id": "a.mp4",
        "uri": str(tmp_path / "videos" / "a.mp4"),
        "stage": "probe",
    }
    assert dead["error"].startswith("probe: cannot open")
    assert reader.dead_letters() == []


def test_priorities_come_from_globs_of_the_relative_path(tmp_path, make_video):
    make_video("videos/urgent/a.mp4", seconds=1)
    make_video("videos/b.mp4", seconds=1)
    source = VideoFolderSource(uri=str(tmp_path / "videos"), priority={"urgent/*": 7})
    table = source.open(source.discover(context(tmp_path))[0], None, context(tmp_path)).read(9)
    assert {r["video_id"]: r["priority"] for r in table.to_pylist()} == {
        "b.mp4": 0,
        "urgent/a.mp4": 7,
    }


def test_videos_with_a_priority_are_read_first(tmp_path, make_video):
    for name in ("a", "b", "z/urgent"):
        make_video(f"videos/{name}.mp4", seconds=1)
    source = VideoFolderSource(uri=str(tmp_path / "videos"), priority={"z/*": 10})
    assert read_all(source, context(tmp_path)) == [("z/urgent.mp4", 0), ("a.mp4", 0), ("b.mp4", 0)]
    # The order is pinned with the listing: a rerun reads it (and its positions) as it was.
    pinned = json.loads((tmp_path / "job" / "videos.json").read_text())
    assert pinned == {"videos": ["z/urgent.mp4", "a.mp4", "b.mp4"]}


def test_each_split_starts_with_its_highest_priority_videos(tmp_path, make_video):
    for name in ("a", "b", "c", "d", "x", "y"):
        make_video(f"videos/{name}.mp4", seconds=1)
    source = VideoFolderSource(
        uri=str(tmp_path / "videos"), videos_per_split=3, priority={"x.mp4": 5, "y.mp4": 9}
    )
    splits = source.discover(context(tmp_path))
    assert [s.info["videos"] for s in splits] == [
        ["y.mp4", "a.mp4", "c.mp4"],
        ["x.mp4", "b.mp4", "d.mp4"],
    ]


# -- follow ---------------------------------------------------------------------------------


def follower(tmp_path, clock: FakeClock) -> VideoFolderSource:
    (tmp_path / "videos").mkdir(exist_ok=True)
    return VideoFolderSource(
        uri=str(tmp_path / "videos"), shard_seconds=1.0, follow=True, poll_s=1.0, clock=clock
    )


def test_a_followed_folder_is_unbounded_and_read_as_one_split(tmp_path):
    source = follower(tmp_path, FakeClock())
    assert source.bounded is False
    assert [s.split_id for s in source.discover(context(tmp_path))] == ["videos-follow"]
    assert not (tmp_path / "job" / "videos.json").exists()


def test_a_video_added_later_is_taken_once_its_size_is_stable_for_one_poll(tmp_path, make_video):
    clock = FakeClock()
    source = follower(tmp_path, clock)
    ctx = context(tmp_path)
    reader = source.open(source.discover(ctx)[0], None, ctx)
    assert reader.read(9) is None  # an empty folder
    make_video("videos/a.mp4", seconds=2)
    clock.advance(1.0)
    assert reader.read(9) is None  # seen once: it may still be being written
    clock.advance(0.5)
    assert reader.read(9) is None  # no new listing before poll_s
    clock.advance(0.5)
    assert drain(reader, 9) == [("a.mp4", 0), ("a.mp4", 1)]
    clock.advance(1.0)
    assert reader.read(9) is None and not reader.finished  # taken once, and waits for more


def test_a_file_still_growing_is_not_taken_half_written(tmp_path, make_video):
    clock = FakeClock()
    source = follower(tmp_path, clock)
    whole = make_video("whole.mp4", seconds=2).read_bytes()
    reader = source.open(source.discover(context(tmp_path))[0], None, context(tmp_path))
    target = tmp_path / "videos" / "a.mp4"
    for size in (len(whole) // 3, 2 * len(whole) // 3, len(whole)):
        target.write_bytes(whole[:size])
        assert reader.read(9) is None
        clock.advance(1.0)
    assert drain(reader, 9) == [("a.mp4", 0), ("a.mp4", 1)]
    assert reader.dead_letters() == []


def test_a_rerun_of_a_followed_folder_takes_neither_a_video_twice_nor_a_shard_twice(
    tmp_path, make_video
):
    clock = FakeClock()
    source = follower(tmp_path, clock)
    make_video("videos/a.mp4", seconds=2)
    make_video("videos/b.mp4", seconds=1)
    ctx = context(tmp_path)
    split = source.discover(ctx)[0]
    first = source.open(split, None, ctx)
    assert first.read(1) is None
    clock.advance(1.0)
    assert drain_some(first, 1) == [("a.mp4", 0)]
    state = json.loads(json.dumps(first.snapshot()))
    assert state["inner"] == {"taken": ["a.mp4"]}
    make_video("videos/c.mp4", seconds=1)

    again = source.open(split, state, context(tmp_path, run=2))
    rows = drain(again)  # the shard left of the video in progress; the rest not yet stable
    clock.advance(1.0)
    rows += drain(again)
    assert rows == [("a.mp4", 1), ("b.mp4", 0), ("c.mp4", 0)]
    assert again.snapshot()["inner"] == {"taken": ["a.mp4", "b.mp4", "c.mp4"]}


def test_a_followed_video_with_a_priority_overtakes_ready_ones(tmp_path, make_video):
    clock = FakeClock()
    (tmp_path / "videos").mkdir()
    source = VideoFolderSource(
        uri=str(tmp_path / "videos"),
        shard_seconds=1.0,
        follow=True,
        poll_s=1.0,
        clock=clock,
        priority={"z/*": 5},
    )
    for name in ("a", "b", "c"):
        make_video(f"videos/{name}.mp4", seconds=1)
    ctx = context(tmp_path)
    reader = source.open(source.discover(ctx)[0], None, ctx)
    assert reader.read(1) is None  # seen once
    clock.advance(1.0)
    assert drain_some(reader, 1) == [("a.mp4", 0)]  # b and c wait, ready
    make_video("videos/z/urgent.mp4", seconds=1)
    clock.advance(1.0)
    assert drain_some(reader, 1) == [("b.mp4", 0)]  # z listed once: maybe still growing
    clock.advance(1.0)
    assert drain(reader) == [("z/urgent.mp4", 0), ("c.mp4", 0)]  # z overtakes c


def drain_some(reader, count: int) -> list[tuple[str, int]]:
    table = reader.read(count)
    assert table is not None
    return [(r["video_id"], r["shard"]) for r in table.to_pylist()]


# -- settings and messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"shard_seconds": 0}, "shard_seconds"),
        ({"videos_per_split": 0}, "videos_per_split"),
        ({"poll_s": 0}, "poll_s"),
        ({"poll_s": float("inf")}, "poll_s"),
        ({"follow": "yes"}, "follow"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(options, field):
    with pytest.raises(ConfigError, match=f"VideoFolderSource.{field}"):
        VideoFolderSource(uri="videos", **options)


def test_the_repr_shows_no_credentials():
    source = VideoFolderSource(uri="s3://KEY:SECRET@bucket/videos", follow=True)
    assert repr(source) == "VideoFolderSource('s3://***@bucket/videos', follow=True)"


def test_kafka_messages_name_a_video_as_a_uri_or_json():
    assert parse_message(b"s3://b/a.mp4") == {
        "video_id": "s3://b/a.mp4",
        "uri": "s3://b/a.mp4",
        "priority": 0,
    }
    assert parse_message(b'{"uri": "/v/b.mp4", "video_id": "b", "priority": 3}')["priority"] == 3
    with pytest.raises(ValueError, match="expected"):
        parse_message(b"two words")


def test_shard_rows_have_the_published_schema():
    assert SHARD_SCHEMA.field("priority").type == pa.int64()
    assert SHARD_SCHEMA.names[:4] == ["video_id", "uri", "priority", "shard"]
