"""Kafka → pipeline → Iceberg, exactly once across a SIGKILL of the driver (issue 4, item 1).

A real Kafka-protocol broker (tansu, in memory) and a real SQL catalog (SQLite in
``tmp_path``); no mocks. The driver runs in a child process (``_kafka_iceberg_driver.py``)
and is killed with SIGKILL mid-run; this process reruns the same job id, which resumes from
the last checkpoint. The broker has no transactions, which this path does not need: the
Iceberg sink's idempotence (one snapshot per epoch, a per-job epoch mark) gives exactly once.

Notes on the local broker (tansu) kept from ``test_kafka.py``: group offsets are read with a
consumer of the group (``committed``), not with the admin client's
``list_consumer_group_offsets``; end offsets come from the connector's ``end_offsets`` (the
high watermark of a fetch), since ``ListOffsets`` falls short after multi-record batches.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _kafka_iceberg_driver import JOB, TABLE, catalog, checkpoint, pipeline
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tideflow.core.checkpoint import CheckpointStore
from tideflow.streaming._broker import KafkaBroker
from tideflow.streaming._broker import kafka_broker as start_broker
from tideflow.streaming.connectors import load_catalog
from tideflow.streaming.connectors._kafka_sink import _DRIVER as _kafka_sink_clients
from tideflow.streaming.connectors.kafka import _DRIVER as _kafka_source_clients
from tideflow.streaming.connectors.kafka import end_offsets

pytestmark = [pytest.mark.kafka, pytest.mark.ray, pytest.mark.slow]

MESSAGES = 600
PARTITIONS = 3


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A local in-memory broker for this module."""
    with start_broker() as broker:
        yield broker
        # The driver-side clients this process cached would keep calling a stopped broker.
        _kafka_source_clients.close_all()
        _kafka_sink_clients.close_all()


# -- helpers (copied from test_kafka.py: test modules are not imported) ----------------------


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            await admin.close()

    asyncio.run(go())


def _produce(bootstrap: str, topic: str, values: list[tuple[int, bytes]]) -> None:
    """Produce ``(partition, value)`` messages, in order."""

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            futures = [await producer.send(topic, v, partition=p) for p, v in values]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(go())


def _group_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, Any]:
    """The group's committed offsets, read by a consumer of the group (not the admin API)."""

    async def go() -> dict[int, Any]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            return {
                p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)
            }
        finally:
            await consumer.stop()

    return asyncio.run(go())


def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The partitions' end offsets (high watermarks; tansu's ListOffsets falls short)."""

    async def go() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            ends = await end_offsets(consumer, tps)
            return {tp.partition: end for tp, end in ends.items()}
        finally:
            await consumer.stop()

    return asyncio.run(go())


def _wait_for(what: str, check: Callable[[], bool], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _table(tmp: Path) -> Any:
    """The output table, or None before the sink's first commit created it."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        return load_catalog(**catalog(str(tmp))).load_table(TABLE)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None


def _rows(tmp: Path) -> list[dict[str, Any]]:
    table = _table(tmp)
    return [] if table is None else table.scan().to_arrow().to_pylist()


# -- the test ---------------------------------------------------------------------------------


def test_driver_killed_mid_run_then_rerun_writes_every_message_to_iceberg_exactly_once(
    ray_session, kafka_broker, tmp_path
):
    import _kafka_iceberg_driver
    from ray import cloudpickle

    # When another package's tests started the shared Ray, its workers lack this folder.
    cloudpickle.register_pickle_by_value(_kafka_iceberg_driver)
    bs = kafka_broker.bootstrap_servers
    topic = "kafka-to-iceberg"
    _create(bs, topic, PARTITIONS)
    _produce(
        bs,
        topic,
        [(i % PARTITIONS, json.dumps({"id": i}).encode()) for i in range(MESSAGES)],
    )
    # Open the catalog once before the child does: pyiceberg's SQL catalog creates its own
    # tables on first open, and two first opens at the same time can collide.
    load_catalog(**catalog(str(tmp_path)))
    script = Path(__file__).with_name("_kafka_iceberg_driver.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    child = subprocess.Popen(
        [sys.executable, str(script), bs, topic, str(tmp_path)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = CheckpointStore(str(tmp_path / "ckpt" / JOB / "checkpoints"))

    def progressed() -> bool:
        assert child.poll() is None, "the driver ended before it could be killed"
        return len(store.ids()) >= 2 and bool(_rows(tmp_path))

    try:
        _wait_for("two checkpoints with rows in the table", progressed, timeout_s=120)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    before = _table(tmp_path)
    assert before is not None
    snapshots_before = len(before.snapshots())
    rows_before = len(before.scan().to_arrow())
    assert 0 < rows_before < MESSAGES, "the job was not killed mid-run"

    pipe = pipeline(bs, topic, str(tmp_path), delay_s=0.0, batch=50)
    rerun = pipe.run(job_id=JOB, checkpoint=checkpoint(str(tmp_path)), progress=False)  # type: ignore[attr-defined]

    assert rerun.restored_from is not None
    table = _table(tmp_path)
    rows = table.scan().to_arrow().to_pylist()
    counts = Counter(r["id"] for r in rows)
    assert set(counts) == set(range(MESSAGES)), (
        f"missing {sorted(set(range(MESSAGES)) - set(counts))[:10]}"
    )
    assert max(counts.values()) == 1, f"duplicated {[k for k, c in counts.items() if c > 1][:10]}"
    assert all(r["twice"] == 2 * r["id"] for r in rows)
    assert {(r["partition"], r["offset"]) for r in rows} == {
        (i % PARTITIONS, i // PARTITIONS) for i in range(MESSAGES)
    }

    # One snapshot per committed epoch, each naming the job and its epoch; none twice.
    snapshots = table.snapshots()
    assert len(snapshots) > snapshots_before, "the rerun appended nothing"
    assert all(s.summary["tideflow.job_id"] == JOB for s in snapshots)
    epochs = [int(s.summary["tideflow.epoch"]) for s in snapshots]
    assert len(epochs) == len(set(epochs)), f"an epoch was appended twice: {epochs}"
    assert epochs == sorted(epochs)
    assert table.properties[f"tideflow.epoch.{JOB}"] == str(epochs[-1])
    staging = tmp_path / "ckpt" / JOB / "iceberg-staging"
    assert staging.is_dir() and not list(staging.rglob("*.parquet")), "staged files left over"

    # The consumer group's committed offsets are the partitions' end offsets.
    ends = _end_offsets(bs, topic, PARTITIONS)
    assert ends == dict.fromkeys(range(PARTITIONS), MESSAGES // PARTITIONS)
    assert _group_offsets(bs, f"tideflow-{JOB}", topic, PARTITIONS) == ends
