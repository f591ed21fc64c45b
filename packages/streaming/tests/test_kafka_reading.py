"""How the engine reads Kafka: topic priorities, quiet partitions asking to be polled
later (``next_awake``), and the driver-side clients closed when a job ends — against the
real local broker (tansu) and a local Ray, like ``test_kafka.py``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _kafka_helpers import create_topic, produce
from structlog.testing import capture_logs

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import JobContext
from tideflow.streaming.connectors.kafka import KafkaSink, KafkaSource, idle_wait
from tideflow.streaming.connectors.kafka import _sink as kafka_sink
from tideflow.streaming.connectors.kafka import _source as kafka_source
from tideflow.streaming.connectors.kafka._client import same_endpoint
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestSource


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A unique topic name (prefix) for one test."""
    return request.node.name.replace("[", "-").replace("]", "")[:60]


def _ctx(tmp_path: Path, job_id: str = "j") -> JobContext:
    return JobContext(job_id=job_id, job_uri=str(tmp_path / "job"))


def _messages(n: int, start: int = 0) -> list[tuple[int, bytes]]:
    return [(0, json.dumps({"n": i}).encode()) for i in range(start, start + n)]


def _open_clients(cache: Any, connector: Any) -> list[Any]:
    return [key for key in cache.cached_keys() if same_endpoint(key, connector)]


# -- topic priorities ------------------------------------------------------------------------


def test_topic_priorities_must_name_the_source_s_topics():
    with pytest.raises(ConfigError, match=r"topic_priorities names 'alert', not among its top"):
        KafkaSource(topics=["alerts", "events"], topic_priorities={"alert": 10})


@pytest.mark.parametrize("value", ["10", 1.5, True])
def test_topic_priorities_must_be_ints(value):
    with pytest.raises(ConfigError, match=r"KafkaSource\.topic_priorities values must be ints"):
        KafkaSource(topics="alerts", topic_priorities={"alerts": value})


@pytest.mark.kafka
def test_each_partition_carries_its_topic_s_priority(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, f"{topic}-alerts", 2)
    create_topic(bs, f"{topic}-events", 1)
    with KafkaSource(
        topics=[f"{topic}-alerts", f"{topic}-events"],
        bootstrap_servers=bs,
        topic_priorities={f"{topic}-alerts": 10},
    ) as source:
        splits = source.discover(_ctx(tmp_path))

    assert {s.split_id: s.priority for s in splits} == {
        f"{topic}-alerts:0": 10,
        f"{topic}-alerts:1": 10,
        f"{topic}-events:0": 0,
    }


@pytest.mark.kafka
@pytest.mark.ray
def test_a_high_priority_topic_is_read_before_a_backlog_on_a_low_priority_one(
    ray_session, kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    backlog, urgent = f"{topic}-backlog", f"{topic}-urgent"  # discovered backlog first
    create_topic(bs, backlog, 1)
    create_topic(bs, urgent, 1)
    produce(bs, backlog, _messages(60))
    produce(bs, urgent, _messages(20, start=1000))
    source = KafkaSource(
        topics=[backlog, urgent],
        bootstrap_servers=bs,
        value_format="json",
        until="now",
        topic_priorities={urgent: 5},
        poll_timeout_s=5.0,  # a first poll waits for the data rather than read nothing
    )
    out = tmp_path / "out"
    # One read at a time (queue_limit=1): the budget is short, so priority decides.
    Pipeline.read(source, batch_size=10).write(CollectingSink(str(out))).run(
        job_id="priorities", queue_limit=1, progress=False
    )

    topics = CollectingSink.read(out).column("topic").to_pylist()  # in the order written
    assert topics == [urgent] * 20 + [backlog] * 60


# -- quiet partitions ------------------------------------------------------------------------


def test_a_quiet_partition_waits_longer_with_each_empty_poll_up_to_the_limit():
    waits = [idle_wait(n, 0.05, 0.5) for n in range(1, 7)]
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]


@pytest.mark.kafka
def test_a_quiet_partition_asks_to_be_polled_later_and_a_message_resets_it(
    kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    source = KafkaSource(topics=topic, bootstrap_servers=bs, value_format="json")
    ctx = _ctx(tmp_path)
    (split,) = source.discover(ctx)
    reader: Any = source.open(split, None, ctx)
    assert reader.next_awake() is None  # never polled: at once

    assert reader.read(10) is None  # an empty poll
    wait = reader.next_awake()
    assert wait is not None and 0 < wait <= source.poll_timeout_s
    polls = []
    getmany = reader._consumer.getmany
    reader._consumer.getmany = lambda *a, **k: polls.append(1) or getmany(*a, **k)
    assert reader.read(10) is None and polls == []  # asked during the wait: no poll

    produce(bs, topic, _messages(3))
    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(reader.next_awake() or 0)
        table = reader.read(10)
        got += [] if table is None else table.column("n").to_pylist()
    wait_after_messages = reader.next_awake()
    reader.close()
    source.close()

    assert got == [0, 1, 2] and polls
    assert wait_after_messages is None  # messages came: at once again


# -- driver-side clients ---------------------------------------------------------------------


@pytest.mark.kafka
def test_close_closes_the_source_s_driver_clients_and_may_be_called_twice(
    kafka_broker, topic, tmp_path
):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    ctx = _ctx(tmp_path)
    source = KafkaSource(topics=topic, bootstrap_servers=bs)
    source.discover(ctx)
    source.commit_positions(ctx, {f"{topic}:0": {"offset": 0}})
    clients = [
        kafka_source._DRIVER._clients[key] for key in _open_clients(kafka_source._DRIVER, source)
    ]
    assert clients  # the admin client and the group's consumer

    source.close()
    source.close()

    assert all(client._closed for client in clients)
    assert _open_clients(kafka_source._DRIVER, source) == []
    assert [s.split_id for s in source.discover(ctx)] == [f"{topic}:0"]  # usable again
    source.close()


@pytest.mark.kafka
def test_a_source_used_as_a_context_manager_closes_its_clients(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    with KafkaSource(topics=topic, bootstrap_servers=bs) as source:
        source.discover(_ctx(tmp_path))
        assert _open_clients(kafka_source._DRIVER, source)

    assert _open_clients(kafka_source._DRIVER, source) == []


@pytest.mark.kafka
def test_close_closes_the_sink_s_driver_clients(kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, topic, 1)
    ctx = _ctx(tmp_path)
    sink = KafkaSink(topic=topic, bootstrap_servers=bs, transactional=False)
    writer = sink.writer(ctx, 0)
    writer.write(1, pa.table({"n": [1, 2]}))
    sink.commit(ctx, 1, [writer.precommit(1)])
    writer.close()
    clients = [kafka_sink._DRIVER._clients[k] for k in _open_clients(kafka_sink._DRIVER, sink)]
    assert clients  # the producer and the marker's consumer

    sink.close()
    sink.close()

    assert all(client._closed for client in clients)
    assert _open_clients(kafka_sink._DRIVER, sink) == []


@pytest.mark.kafka
@pytest.mark.ray
def test_a_job_closes_its_driver_side_kafka_clients(ray_session, kafka_broker, topic, tmp_path):
    bs = kafka_broker.bootstrap_servers
    create_topic(bs, f"{topic}-in", 2)
    create_topic(bs, f"{topic}-out", 1)
    produce(bs, f"{topic}-in", _messages(10))
    source = KafkaSource(topics=f"{topic}-in", bootstrap_servers=bs, until="now")
    sink = KafkaSink(topic=f"{topic}-out", bootstrap_servers=bs, value_format="bytes")

    result = (
        Pipeline.read(source)
        .write(sink)
        .run(job_id="closes", checkpoint=CheckpointConfig(uri=str(tmp_path)), progress=False)
    )

    assert result.rows_out == 10
    assert _open_clients(kafka_source._DRIVER, source) == []  # discovery, end offsets, commits
    assert _open_clients(kafka_sink._DRIVER, sink) == []  # the producer, the marker


@pytest.mark.ray
def test_a_connector_that_fails_to_close_does_not_fail_the_job(ray_session, tmp_path):
    source = TestSource([[{"x": 1}]])

    def fail() -> None:
        raise RuntimeError("cannot close")

    object.__setattr__(source, "close", fail)  # this instance only (it is frozen)
    with capture_logs() as logs:
        result = (
            Pipeline.read(source)
            .write(CollectingSink(str(tmp_path / "out")))
            .run(job_id="close-fails", progress=False)
        )

    assert result.rows_out == 1
    failed = [e for e in logs if e["event"] == "connector.close_failed"]
    assert [(e["connector"], e["error"]) for e in failed] == [("source", "cannot close")]
