"""Kafka → pipeline → Iceberg, exactly once across a SIGKILL of the driver (issue 4, item 1).

A real Kafka-protocol broker (tansu, in memory) and a real SQL catalog (SQLite in
``tmp_path``); no mocks. The driver runs in a child process (``_kafka_iceberg_driver.py``)
and is killed with SIGKILL mid-run; this process reruns the same job id, which resumes from
the last checkpoint. The broker has no transactions, which this path does not need: the
Iceberg sink's idempotence (one snapshot per epoch, a per-job epoch mark) gives exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _kafka_helpers import create_topic, group_offsets, partition_ends, produce, wait_for
from _kafka_iceberg_driver import JOB, TABLE, catalog, checkpoint, pipeline

from tideflow.core.checkpoint import CheckpointStore
from tideflow.streaming.connectors import load_catalog

pytestmark = [pytest.mark.kafka, pytest.mark.ray, pytest.mark.slow]

MESSAGES = 600
PARTITIONS = 3


# -- helpers -----------------------------------------------------------------------------------


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
    create_topic(bs, topic, PARTITIONS)
    produce(
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
        wait_for("two checkpoints with rows in the table", progressed, timeout_s=120)
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
    ends = partition_ends(bs, topic, PARTITIONS)
    assert ends == dict.fromkeys(range(PARTITIONS), MESSAGES // PARTITIONS)
    assert group_offsets(bs, f"tideflow-{JOB}", topic, PARTITIONS) == ends
