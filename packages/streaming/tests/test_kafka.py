"""The Kafka connector against a real Kafka-protocol broker (tansu, in memory; no mocks).

One broker serves the test session (``kafka_broker`` in conftest); every test uses its own
topics and job ids. The broker has no transactions, so :class:`KafkaSink` runs at least
once with its dedupe key here.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _kafka_driver import pipeline, tag
from _kafka_helpers import create_topic, group_offsets, produce, wait_for
from aiokafka import AIOKafkaConsumer, TopicPartition

from tideflow.core.checkpoint import CheckpointStore
from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import JobContext, JSONLSink, ParquetSink, Split
from tideflow.streaming.connectors.kafka import KafkaSink, KafkaSource, end_offsets
from tideflow.streaming.connectors.kafka._sink import DEDUPE_HEADER
from tideflow.streaming.errors import ConfigError, SinkError, SourceError

pytestmark = pytest.mark.kafka

SECRET = "hunter2-do-not-log-me"


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A unique topic name for one test (created by :func:`_create`)."""
    return request.node.name.replace("[", "-").replace("]", "")[:80]


# -- helpers -----------------------------------------------------------------------------------


def _json_messages(partitions: int, n: int, start: int = 0) -> list[tuple[int, bytes]]:
    return [(i % partitions, json.dumps({"n": i}).encode()) for i in range(start, start + n)]


def _consume(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    async def go() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            ends = await end_offsets(consumer, tps)  # tansu's ListOffsets falls short
            await consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            while len(out) < sum(ends.values()):
                batches = await consumer.getmany(*tps, timeout_ms=500)
                out += [m for ms in batches.values() for m in ms]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(go())


def _ctx(tmp_path: Path, job_id: str = "j") -> JobContext:
    return JobContext(job_id=job_id, job_uri=str(tmp_path / "job"))


def _drain(source: KafkaSource, ctx: JobContext, states: dict[str, Any] | None = None) -> list:
    """Every row of every split (bounded, or until each split is idle for a while)."""
    rows = []
    for split in source.discover(ctx):
        reader = source.open(split, (states or {}).get(split.split_id), ctx)
        idle_since = time.monotonic()
        while not reader.finished and time.monotonic() - idle_since < 1.5:
            table = reader.read(7)
            if table is not None:
                rows += table.to_pylist()
                idle_since = time.monotonic()
        reader.close()
    return rows


def _output(out: Path) -> list[dict[str, Any]]:
    if not out.exists() or not any(out.glob("*.parquet")):
        return []
    return pq.read_table(str(out)).to_pylist()


def _assert_exactly_once(rows: list[dict[str, Any]], n: int) -> None:
    counts = Counter(r["n"] for r in rows)
    assert set(counts) == set(range(n)), f"missing {sorted(set(range(n)) - set(counts))[:10]}"
    assert max(counts.values()) == 1, f"duplicated {[k for k, c in counts.items() if c > 1][:10]}"
    assert all(r["twice"] == 2 * r["n"] for r in rows)


# -- source, at the reader level ------------------------------------------------------------


def test_source_reads_every_partition_with_coordinates(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 3)
    produce(bs, topic, _json_messages(3, 30))
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json", until="now")

    splits = source.discover(_ctx(tmp_path))
    rows = _drain(source, _ctx(tmp_path))

    assert [s.split_id for s in splits] == [f"{topic}:0", f"{topic}:1", f"{topic}:2"]
    assert sorted(r["n"] for r in rows) == list(range(30))
    assert {(r["partition"], r["offset"]) for r in rows} == {(n % 3, n // 3) for n in range(30)}
    assert all(r["topic"] == topic and r["timestamp"] is not None for r in rows)


def test_resume_from_a_snapshot_neither_skips_nor_repeats(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    produce(bs, topic, _json_messages(1, 25))
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json")
    ctx = _ctx(tmp_path)
    (split,) = source.discover(ctx)

    first = source.open(split, None, ctx)
    seen: list[int] = []
    while len(seen) < 9:
        table = first.read(4)
        seen += [] if table is None else table.column("n").to_pylist()
    state = first.snapshot()
    first.close()
    rest = _drain(source, ctx, {split.split_id: state})

    assert state == {"offset": len(seen)}
    assert seen + [r["n"] for r in rest] == list(range(25))


def test_until_now_ends_where_the_first_discovery_saw_the_end(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 2)
    produce(bs, topic, _json_messages(2, 10))
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json", until="now")
    ctx = _ctx(tmp_path)
    first = source.discover(ctx)
    produce(bs, topic, _json_messages(2, 6, start=10))

    again = source.discover(ctx)  # a rerun of the same job
    rows = _drain(source, ctx)

    assert source.bounded
    assert [s.info["end"] for s in first] == [5, 5] == [s.info["end"] for s in again]
    assert sorted(r["n"] for r in rows) == list(range(10))


def test_explicit_end_offsets_bound_the_partitions_read(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 2)
    produce(bs, topic, _json_messages(2, 10))
    source = KafkaSource(
        topics=topic, bootstrap_servers=bs, value_format="json", until={f"{topic}:1": 3}
    )

    rows = _drain(source, _ctx(tmp_path))

    assert sorted(r["n"] for r in rows) == [1, 3, 5]


def _arrow_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
    "case",
    [
        ("bytes", [b"\x00raw", b"more"], [{"value": b"\x00raw"}, {"value": b"more"}]),
        (
            "json",
            [b'{"a": 1, "offset": "x"}', b"[1, 2]"],
            [{"a": 1, "value.offset": "x"}, {"value": [1, 2]}],
        ),
        (
            "arrow",
            [_arrow_ipc(pa.table({"a": [1, 2]})), _arrow_ipc(pa.table({"a": [3]}))],
            [{"a": 1}, {"a": 2}, {"a": 3}],
        ),
    ],
    ids=["bytes", "json", "arrow"],
)
def test_values_decode_by_format(kafka_broker, topic, tmp_path, case):
    value_format, values, expected = case
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    produce(bs, topic, [(0, v) for v in values])
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format=value_format, until="now")

    rows = _drain(source, _ctx(tmp_path))

    coordinates = ("topic", "partition", "offset", "timestamp", "key")
    # Messages read together share columns (null where a message has no such field).
    values = [{k: v for k, v in r.items() if k not in coordinates and v is not None} for r in rows]
    assert values == expected


def test_a_callable_decodes_values(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    produce(bs, topic, [(0, b"3"), (0, b"4")])
    source = KafkaSource(
        topics=topic,
        bootstrap_servers=bs,
        value_format=lambda raw: {"square": int(raw) ** 2},
        until="now",
    )

    assert [r["square"] for r in _drain(source, _ctx(tmp_path))] == [9, 16]


def test_a_malformed_json_message_becomes_a_dead_letter_with_coordinates(
    kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    produce(bs, topic, [(0, b'{"n": 0}'), (0, b"{not json"), (0, b'{"n": 2}')])
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json", until="now")
    ctx = _ctx(tmp_path)
    (split,) = source.discover(ctx)
    reader = source.open(split, None, ctx)

    table = reader.read(10)
    (letter,) = reader.dead_letters()

    assert table is not None and table.column("n").to_pylist() == [0, 2]
    assert reader.finished and reader.snapshot() == {"offset": 3}
    assert letter["offset"] == 1
    assert "JSONDecodeError" in letter["error"]
    assert {k: letter["record"][k] for k in ("topic", "partition", "offset", "value")} == {
        "topic": topic,
        "partition": 0,
        "offset": 1,
        "value": "{not json",
    }
    assert reader.dead_letters() == []  # taken


def test_a_message_whose_types_do_not_fit_its_batch_becomes_a_dead_letter(
    kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    produce(bs, topic, [(0, b'{"n": 1}'), (0, b'{"n": "one"}'), (0, b'{"n": 3}')])
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json", until="now")
    ctx = _ctx(tmp_path)
    (split,) = source.discover(ctx)
    reader = source.open(split, None, ctx)

    table = reader.read(10)
    (letter,) = reader.dead_letters()

    assert table is not None and table.column("n").to_pylist() == [1, 3]
    assert letter["offset"] == 1 and "does not fit" in letter["error"]


def test_start_latest_and_committed_pick_where_a_new_partition_starts(
    kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    produce(bs, topic, _json_messages(1, 5))
    ctx = _ctx(tmp_path, job_id="starts")
    committed = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json")
    committed.commit_positions(ctx, {f"{topic}:0": {"offset": 3}})
    latest = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json", start="latest")
    (split,) = latest.discover(ctx)
    latest_reader = latest.open(split, None, ctx)
    assert latest_reader.read(10) is None  # positions itself at the end
    produce(bs, topic, _json_messages(1, 2, start=5))

    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        table = latest_reader.read(10)
        got += [] if table is None else table.column("n").to_pylist()
    latest_reader.close()
    from_committed = KafkaSource(
        topics=topic, bootstrap_servers=bs, value_format="json", start="committed"
    )

    assert got == [5, 6]
    assert [r["n"] for r in _drain(from_committed, ctx)] == [3, 4, 5, 6]


def test_a_topic_created_later_is_found_on_rediscovery(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, f"{topic}-a", 1)
    source = KafkaSource(
        topics=[f"{topic}-a", f"{topic}-b"], bootstrap_servers=bs, allow_missing_topics=True
    )
    before = source.discover(_ctx(tmp_path))
    create_topic(bs, f"{topic}-b", 2)

    after = source.discover(_ctx(tmp_path))

    assert [s.split_id for s in before] == [f"{topic}-a:0"]
    assert [s.split_id for s in after] == [f"{topic}-a:0", f"{topic}-b:0", f"{topic}-b:1"]
    assert not source.bounded


@pytest.mark.parametrize("until", [None, "now"])
def test_a_topic_that_does_not_exist_at_the_start_is_an_error_naming_it(
    kafka_broker, topic, tmp_path, until
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, f"{topic}-here", 1)
    source = KafkaSource(
        topics=[f"{topic}-here", f"{topic}-absent"], bootstrap_servers=bs, until=until
    )

    with pytest.raises(ConfigError) as caught:
        source.discover(_ctx(tmp_path))

    message = str(caught.value)
    assert f"'{topic}-absent' not found at {bs}" in message
    assert f"{topic}-here'" not in message
    assert "allow_missing_topics=True" in message


def test_a_missing_topic_error_shows_no_secret(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    # A secret that also appears in the servers' text (a misplaced credential).
    source = KafkaSource(
        topics=f"{topic}-absent",
        bootstrap_servers=[bs, f"{SECRET}.invalid:9092"],
        client_options={"sasl_plain_password": SECRET},
    )

    with pytest.raises(ConfigError) as caught:
        source.discover(_ctx(tmp_path))

    assert SECRET not in str(caught.value) and "***.invalid:9092" in str(caught.value)


def test_end_offsets_for_a_partition_that_does_not_exist_are_an_error_naming_it(
    kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    # A bounded job would wait forever for partition 7 to reach offset 5.
    source = KafkaSource(
        topics=topic, bootstrap_servers=bs, until={f"{topic}:0": 0, f"{topic}:7": 5}
    )

    with pytest.raises(ConfigError) as caught:
        source.discover(_ctx(tmp_path))

    assert f"until names partitions ['{topic}:7'] that do not exist" in str(caught.value)
    assert "allow_missing_topics=True" in str(caught.value)


def test_end_offsets_for_missing_partitions_are_dropped_with_allow_missing_topics(
    kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    source = KafkaSource(
        topics=topic,
        bootstrap_servers=bs,
        until={f"{topic}:0": 0, f"{topic}:7": 5},
        allow_missing_topics=True,
    )

    assert [s.split_id for s in source.discover(_ctx(tmp_path))] == [f"{topic}:0"]


def test_end_offsets_must_name_partitions_of_the_source_s_topics():
    with pytest.raises(ConfigError, match=r"until names partitions of \['other'\]"):
        KafkaSource(topics="mine", until={"mine:0": 1, "other:0": 1})


def test_a_bounded_job_with_end_offsets_on_a_missing_topic_fails_instead_of_waiting(
    ray_session, kafka_broker, topic, tmp_path
):
    source = KafkaSource(
        topics=f"{topic}-absent",
        bootstrap_servers=kafka_broker.bootstrap_servers,
        until={f"{topic}-absent:0": 5},
    )
    pipe = Pipeline.read(source).write(ParquetSink(str(tmp_path / "out")))
    checkpoint = CheckpointConfig(uri=str(tmp_path / "ckpt"))

    with pytest.raises(ConfigError, match=f"'{topic}-absent' not found"):
        job = pipe.start(job_id="missing-until", checkpoint=checkpoint)
        try:
            job.wait(timeout=60)  # it used to run, empty, until stopped
        finally:
            job.stop()


def test_allow_missing_topics_starts_without_them(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, f"{topic}-here", 1)
    source = KafkaSource(
        topics=[f"{topic}-here", f"{topic}-absent"],
        bootstrap_servers=bs,
        until="now",
        allow_missing_topics=True,
    )

    assert [s.split_id for s in source.discover(_ctx(tmp_path))] == [f"{topic}-here:0"]


def test_a_job_reading_a_missing_topic_fails_instead_of_ending_empty(
    ray_session, kafka_broker, topic, tmp_path
):
    source = KafkaSource(
        topics=f"{topic}-absent", bootstrap_servers=kafka_broker.bootstrap_servers, until="now"
    )
    pipe = Pipeline.read(source).map_batches(tag, num_cpus=0.25)
    pipe = pipe.write(ParquetSink(str(tmp_path / "out")))
    checkpoint = CheckpointConfig(uri=str(tmp_path / "ckpt"))

    with pytest.raises(ConfigError, match=f"'{topic}-absent' not found"):
        pipe.run(job_id="missing", checkpoint=checkpoint, progress=False)
    assert not (tmp_path / "out").exists()


def test_commit_positions_commits_the_consumer_group_offsets(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 2)
    source = KafkaSource(topics=topic, bootstrap_servers=bs)
    ctx = _ctx(tmp_path, job_id="cp")

    source.commit_positions(ctx, {f"{topic}:0": {"offset": 7}, f"{topic}:1": {"offset": 2}})
    source.commit_positions(ctx, {f"{topic}:0": {"offset": 9}})

    assert source.group(ctx) == "tideflow-cp"
    assert group_offsets(bs, "tideflow-cp", topic, 2) == {0: 9, 1: 2}


def test_secrets_stay_out_of_reprs_and_errors(tmp_path):
    options = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
    }
    source = KafkaSource(
        topics="t", bootstrap_servers="127.0.0.1:1", client_options=options, request_timeout_s=5
    )
    sink = KafkaSink(topic="t", bootstrap_servers="127.0.0.1:1", client_options=options)

    with pytest.raises(SourceError) as caught:
        source.discover(_ctx(tmp_path))

    assert "127.0.0.1:1" in str(caught.value)
    for text in (repr(source), repr(sink), str(caught.value)):
        assert SECRET not in text and "alice" in repr(source)
    assert "***" in repr(source)


def test_a_reader_that_never_connects_fails_after_its_connect_timeout(tmp_path):
    source = KafkaSource(
        topics="t",
        bootstrap_servers="127.0.0.1:1",
        client_options={"sasl_plain_password": SECRET},
        connect_timeout_s=0.5,
        request_timeout_s=5,
    )
    split = Split(split_id="t:0", info={"topic": "t", "partition": 0, "end": None})
    reader = source.open(split, {"offset": 4}, _ctx(tmp_path))

    assert reader.read(10) is None  # not yet: the broker may be starting
    time.sleep(1.1)  # past the timeout and the 1 s between attempts
    with pytest.raises(SourceError, match=r"cannot read t:0 from 127\.0\.0\.1:1") as caught:
        reader.read(10)

    assert SECRET not in str(caught.value)
    assert reader.snapshot() == {"offset": 4}


# -- sink -----------------------------------------------------------------------------------


def test_the_local_broker_has_no_transactions_so_auto_mode_is_at_least_once(
    kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    ctx = _ctx(tmp_path, job_id="tx")
    strict = KafkaSink(topic=topic, bootstrap_servers=bs, transactional=True, request_timeout_s=10)
    writer = strict.writer(ctx, 0)
    writer.write(1, pa.table({"n": [1]}))

    assert KafkaSink(topic=topic, bootstrap_servers=bs).transactions() is False
    with pytest.raises(SinkError, match="transaction"):
        strict.commit(ctx, 1, [writer.precommit(1)])
    assert _consume(bs, topic, 1) == []


def test_sink_commit_produces_an_epoch_once_even_when_called_twice(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 2)
    ctx = _ctx(tmp_path, job_id="once")
    sink = KafkaSink(topic=topic, bootstrap_servers=bs, value_format="json", transactional=False)
    writers = [sink.writer(ctx, 0), sink.writer(ctx, 1)]
    writers[0].write(1, pa.table({"key": ["a", "b"], "n": [0, 1]}))
    writers[1].write(1, pa.table({"key": ["c"], "n": [2]}))
    writers[0].write(2, pa.table({"key": ["d"], "n": [3]}))
    epoch1 = [w.precommit(1) for w in writers]

    assert _consume(bs, topic, 2) == []  # staged, not produced
    sink.commit(ctx, 1, epoch1)
    sink.commit(ctx, 1, epoch1)  # replayed after a crash: nothing new
    sink.commit(ctx, 2, [writers[0].precommit(2), writers[1].precommit(2)])
    messages = _consume(bs, topic, 2)

    assert sorted(json.loads(m.value)["n"] for m in messages) == [0, 1, 2, 3]
    ids = sorted(dict(m.headers)[DEDUPE_HEADER].decode() for m in messages)
    assert ids == ["once:1:0:0", "once:1:0:1", "once:1:1:0", "once:2:0:0"]
    assert sorted(m.key for m in messages) == [b"a", b"b", b"c", b"d"]


def test_sink_recover_drops_staged_epochs_after_the_checkpoint(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    ctx = _ctx(tmp_path, job_id="rec")
    sink = KafkaSink(topic=topic, bootstrap_servers=bs, value_format="bytes")
    writer = sink.writer(ctx, 0)
    for epoch in (1, 2, 3):
        writer.write(epoch, pa.table({"value": [f"e{epoch}".encode()]}))
    pre = {epoch: writer.precommit(epoch) for epoch in (1, 2, 3)}

    sink.recover(ctx, last_epoch=1)
    sink.commit(ctx, 1, [pre[1]])

    assert [m.value for m in _consume(bs, topic, 1)] == [b"e1"]
    with pytest.raises(SinkError, match="is gone"):
        sink.commit(ctx, 2, [pre[2]])


def test_sink_refuses_an_epoch_older_than_the_produced_marker(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    sink = KafkaSink(topic=topic, bootstrap_servers=bs, value_format="bytes")

    def commit(job_dir: str, epoch: int) -> None:
        ctx = JobContext(job_id="reused", job_uri=str(tmp_path / job_dir))
        writer = sink.writer(ctx, 0)
        writer.write(epoch, pa.table({"value": [f"e{epoch}".encode()]}))
        sink.commit(ctx, epoch, [writer.precommit(epoch)])

    commit("first", 5)
    with pytest.raises(SinkError, match="reused without its checkpoints"):
        commit("second", 1)  # the same job id, its checkpoints gone

    assert [m.value for m in _consume(bs, topic, 1)] == [b"e5"]


# -- end to end -----------------------------------------------------------------------------


def test_a_malformed_message_lands_in_the_dead_letters_and_the_job_goes_on(
    ray_session, kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 2)
    messages = _json_messages(2, 40)
    messages[17] = (1, b"{broken")
    produce(bs, topic, messages)
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json", until="now")

    result = (
        Pipeline.read(source, batch_size=8)
        .map_batches(tag, num_cpus=0.25)
        .write(ParquetSink(str(tmp_path / "out")))
        .run(
            job_id="dl",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.5),
            dead_letter=JSONLSink(str(tmp_path / "dead")),
            progress=False,
        )
    )

    assert sorted(r["n"] for r in _output(tmp_path / "out")) == sorted(set(range(40)) - {17})
    (letter,) = [
        json.loads(line)
        for f in sorted((tmp_path / "dead").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    record = json.loads(letter["record"])
    assert letter["stage"] == "source" and "JSONDecodeError" in letter["error"]
    assert (record["topic"], record["partition"], record["offset"]) == (topic, 1, 8)
    assert result.dead_letters == 1
    assert group_offsets(bs, "tideflow-dl", topic, 2) == {0: 20, 1: 20}


def test_ack_mode_delivers_every_message_and_commits_the_group_offsets(
    ray_session, kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 3)
    produce(bs, topic, _json_messages(3, 90))
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json", until="now")

    (
        Pipeline.read(source, batch_size=10)
        .map_batches(tag, num_cpus=0.25)
        .write(ParquetSink(str(tmp_path / "out")))
        .run(
            job_id="ack",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.3, mode="ack"),
            progress=False,
        )
    )

    _assert_exactly_once(_output(tmp_path / "out"), 90)
    assert group_offsets(bs, "tideflow-ack", topic, 3) == {0: 30, 1: 30, 2: 30}


def test_a_pipeline_into_kafka_produces_each_row_once_with_its_dedupe_key(
    ray_session, kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, f"{topic}-in", 2)
    create_topic(bs, f"{topic}-out", 2)
    produce(bs, f"{topic}-in", _json_messages(2, 60))
    source = KafkaSource(
        topics=f"{topic}-in", bootstrap_servers=bs, value_format="json", until="now"
    )

    (
        Pipeline.read(source, batch_size=10)
        .map_batches(tag, num_cpus=0.25)
        .write(KafkaSink(topic=f"{topic}-out", bootstrap_servers=bs, value_format="json"))
        .run(
            job_id="tokafka",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.3),
            progress=False,
        )
    )
    messages = _consume(bs, f"{topic}-out", 2)

    _assert_exactly_once([json.loads(m.value) for m in messages], 60)
    ids = [dict(m.headers)[DEDUPE_HEADER].decode() for m in messages]
    assert len(set(ids)) == 60 and all(i.startswith("tokafka:") for i in ids)
    assert not list((tmp_path / "ckpt" / "tokafka" / "kafka_sink").rglob("*.arrow"))


@pytest.mark.slow
def test_driver_killed_mid_run_then_rerun_gives_every_message_exactly_once(
    ray_session, kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    n = 600
    create_topic(bs, topic, 3)
    produce(bs, topic, _json_messages(3, n))
    script = Path(__file__).with_name("_kafka_driver.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    child = subprocess.Popen(
        [sys.executable, str(script), bs, topic, str(tmp_path)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = CheckpointStore(str(tmp_path / "ckpt" / "k" / "checkpoints"))

    def progressed() -> bool:
        assert child.poll() is None, "the driver ended before it could be killed"
        return len(store.ids()) >= 2 and bool(_output(tmp_path / "out"))

    try:
        wait_for("two checkpoints with output", progressed, timeout_s=120)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    before = len(_output(tmp_path / "out"))
    assert 0 < before < n, "the job was not killed mid-run"

    pipe = pipeline(bs, topic, str(tmp_path), delay_s=0.0, batch=50)
    rerun = pipe.run(  # type: ignore[attr-defined]
        job_id="k",
        checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.3, retain=50),
        progress=False,
    )

    assert rerun.restored_from is not None
    _assert_exactly_once(_output(tmp_path / "out"), n)
    assert group_offsets(bs, "tideflow-k", topic, 3) == {0: n // 3, 1: n // 3, 2: n // 3}


@pytest.mark.slow
def test_broker_paused_for_10s_mid_run_then_the_job_recovers_without_loss_or_duplicates(
    ray_session, kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 2)
    source = KafkaSource(
        topics=topic, bootstrap_servers=bs, value_format="json", request_timeout_s=3
    )
    out = tmp_path / "out"
    job = (
        Pipeline.read(source, batch_size=20)
        .map_batches(tag, num_cpus=0.25)
        .write(ParquetSink(str(out)))
        .start(
            job_id="pause", checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.5)
        )
    )
    try:
        produce(bs, topic, _json_messages(2, 100))
        wait_for("the first half", lambda: len(_output(out)) >= 100)
        kafka_broker.pause()
        try:
            time.sleep(10)
            assert not job.done(), "the job stopped while the broker was paused"
        finally:
            kafka_broker.resume()
        produce(bs, topic, _json_messages(2, 100, start=100))
        wait_for("the second half", lambda: len(_output(out)) >= 200)
    finally:
        job.stop()
    job.wait(timeout=120)

    _assert_exactly_once(_output(out), 200)
    assert group_offsets(bs, "tideflow-pause", topic, 2) == {0: 100, 1: 100}
