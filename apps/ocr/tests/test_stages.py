"""Stage functions and message parsing without Ray: the gather, the failed-video path,
the Kafka message format, source and output texts."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tideflow.media.sources import VideoFolderSource, VideoTopicSource, parse_message
from tideflow.streaming.connectors import JSONLSink
from tideflow_ocr import OcrApp, OcrConfig, parse_output, parse_source
from tideflow_ocr.errors import ConfigError
from tideflow_ocr.stages import RESULT_SCHEMA, FilterVideos, gather_shards


def shard(i: int, n: int, *, text: str | None = "hello", error: str | None = None) -> dict:
    t = i + 0.5
    return {
        "video_id": "v",
        "uri": "s3://KEY:SECRET@bucket/v.mp4",
        "priority": 0,
        "shard": i,
        "shards": n,
        "duration_s": float(n),
        "frames": [{"t": t, "t0": float(i), "t1": i + 1.0}],
        "lines": []
        if text is None
        else [{"t": t, "text": text, "score": 0.99, "x0": 0.1, "y0": 0.1, "x1": 0.6, "y1": 0.3}],
        "error": error,
    }


def test_gather_emits_a_video_once_every_shard_is_in_whatever_their_order():
    state, out = gather_shards(None, shard(2, 3))
    assert out is None
    state, out = gather_shards(state, shard(0, 3))
    state, out = gather_shards(state, shard(0, 3))  # seen twice: counted once
    assert out is None
    state, out = gather_shards(state, shard(1, 3))
    assert state is None  # forgotten once emitted
    assert out is not None and [f["t"] for f in out["frames"]] == [0.5, 1.5, 2.5]
    assert [line["t0"] for line in out["lines"]] == [0.0, 1.0, 2.0]


def test_a_video_with_a_failed_shard_becomes_one_failed_result_naming_stage_and_shard():
    _, video = gather_shards(None, shard(0, 1, error="decode: VideoError: truncated"))
    table = FilterVideos(OcrConfig())(pa.Table.from_pylist([video]))
    assert table.schema == RESULT_SCHEMA
    row = table.to_pylist()[0]
    assert row["status"] == "failed" and row["segments"] == []
    assert row["outcome"]["stage"] == "decode"
    assert "shard 0: decode: VideoError: truncated" in row["error"]
    assert "SECRET" not in row["uri"]


def test_filter_turns_a_gathered_video_into_segments():
    state, _ = gather_shards(None, shard(0, 2))
    _, video = gather_shards(state, shard(1, 2))
    row = FilterVideos(OcrConfig())(pa.Table.from_pylist([video])).to_pylist()[0]
    assert row["status"] == "ok" and row["text"] == "hello"
    assert [(s["start_s"], s["end_s"]) for s in row["segments"]] == [(0.0, 2.0)]


def test_kafka_messages_name_a_video_as_a_uri_or_json():
    assert parse_message(b"s3://b/a.mp4") == {
        "video_id": "s3://b/a.mp4",
        "uri": "s3://b/a.mp4",
        "priority": 0,
    }
    assert parse_message(b'{"uri": "/v/b.mp4", "video_id": "b", "priority": 3}') == {
        "video_id": "b",
        "uri": "/v/b.mp4",
        "priority": 3,
    }
    for bad in (b"", b"two words", b'{"video_id": "x"}', b'{"uri": "/a", "priority": "high"}'):
        with pytest.raises(ValueError, match=r"expected|priority"):
            parse_message(bad)


def test_source_and_output_texts_become_connectors(tmp_path):
    folder = parse_source(str(tmp_path), shard_seconds=3)
    assert isinstance(folder, VideoFolderSource) and folder.shard_seconds == 3
    topic = parse_source("kafka://127.0.0.1:9092,127.0.0.1:9093/a,b")
    assert isinstance(topic, VideoTopicSource) and topic.until == "now"
    assert parse_source("kafka://h:1/t", follow=True).bounded is False
    assert isinstance(parse_output(str(tmp_path / "out")), JSONLSink)
    iceberg = parse_output("iceberg://ns.t?uri=sqlite:///x.db", catalog={"warehouse": "/w"})
    assert type(iceberg).__name__ == "IcebergSink"
    with pytest.raises(ConfigError, match="expected iceberg://"):
        parse_output("iceberg://nodot")


def test_folder_source_lists_videos_only_and_pins_priorities(tmp_path):
    for name in ("b.mp4", "a.MKV", "notes.txt", ".hidden.mp4", "_staging/c.mp4", "urgent/d.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    source = VideoFolderSource(uri=str(tmp_path), priority={"urgent/*": 7})
    assert source.list_videos() == ["a.MKV", "b.mp4", "urgent/d.mp4"]
    assert [source.priority_of(v) for v in source.list_videos()] == [0, 0, 7]


def test_a_jsonl_file_output_holds_each_committed_epoch_once(tmp_path):
    from tideflow.streaming.connectors import JobContext

    sink = parse_output(str(tmp_path / "new" / "results.jsonl"))  # its folder is created
    ctx = JobContext(job_id="j", job_uri=str(tmp_path / "job"))
    sink.recover(ctx, None)
    writer = sink.writer(ctx, 0)
    for epoch, ids in ((1, [1, 2]), (2, [3])):
        writer.write(epoch, pa.table({"id": ids}))
        state = writer.precommit(epoch)
        sink.commit(ctx, epoch, [state])
        sink.commit(ctx, epoch, [state])  # a replayed commit changes nothing
    lines = (tmp_path / "new" / "results.jsonl").read_text().splitlines()
    assert lines == ['{"id": 1}', '{"id": 2}', '{"id": 3}']


def test_an_epoch_holds_about_two_rounds_of_ocr_unless_told(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")  # only listed here, never read

    def cap(**kwargs) -> int | None:
        app = OcrApp(
            str(tmp_path), [str(tmp_path / "out")], state_uri=str(tmp_path / "st"), **kwargs
        )
        return app.checkpoint().max_batches

    assert cap(config=OcrConfig(ocr_concurrency=(1, 3))) == 6
    assert cap(config=OcrConfig(ocr_concurrency=(1, 3)), epoch_shards=40) == 40
    for bad in (0, -2, 1.0, True):
        with pytest.raises(ConfigError, match="epoch_shards"):
            OcrApp(str(tmp_path), [str(tmp_path / "out")], epoch_shards=bad)


def test_a_bad_checkpoint_interval_is_refused_saying_what_is_allowed(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")  # only listed here, never read
    for bad in (0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ConfigError, match="checkpoint_interval_s must be a number of sec"):
            OcrApp(str(tmp_path), [str(tmp_path / "out")], checkpoint_interval_s=bad)


def test_the_default_job_id_is_the_same_however_a_local_path_is_spelled(tmp_path, monkeypatch):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"x")  # only listed here, never read
    monkeypatch.chdir(tmp_path)

    def job_id(source: str, output: str) -> str:
        return OcrApp(source, [output, "iceberg://ocr.results"]).job_id

    ids = {
        job_id("videos", "out"),
        job_id("videos/", "out/"),
        job_id("./videos", "./out"),
        job_id("videos//", "out/."),
    }
    assert len(ids) == 1
    assert job_id("videos", "other") not in ids
