"""Kafka → Iceberg helpers that run inside Ray workers, and a driver to be killed with SIGKILL.

``python _kafka_iceberg_driver.py BOOTSTRAP TOPIC TMP`` runs the Kafka → map → Iceberg job
of ``test_kafka_to_iceberg.py`` (job id ``JOB``, a slow map, the SQL catalog of
:func:`catalog`) until it is killed. The test reruns the same job in its own process with
:func:`pipeline` and :func:`checkpoint`.
"""

from __future__ import annotations

import os
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

JOB = "k2i"
TABLE = "lake.events"


def catalog(tmp: str) -> dict[str, str]:
    """The job's catalog: SQL on SQLite, with a local warehouse, under ``tmp``."""
    return {"uri": f"sqlite:///{tmp}/catalog.db", "warehouse": f"{tmp}/warehouse"}


def tag(table: pa.Table) -> pa.Table:
    """Keep a message's coordinates and its ``id``; add ``twice`` = 2 id."""
    table = table.select(["topic", "partition", "offset", "id"])
    return table.append_column("twice", pc.multiply(table.column("id"), 2))


class SlowTag:
    """:func:`tag`, taking ``delay_s`` per batch (so that a test can kill the job mid-run)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def __call__(self, table: pa.Table) -> pa.Table:
        time.sleep(self.delay_s)
        return tag(table)


def pipeline(bootstrap: str, topic: str, tmp: str, *, delay_s: float, batch: int) -> object:
    from tideflow.streaming import Pipeline
    from tideflow.streaming.connectors import IcebergSink, KafkaSource

    source = KafkaSource(
        topics=topic, bootstrap_servers=bootstrap, value_format="json", until="now"
    )
    return (
        Pipeline.read(source, batch_size=batch)
        .map_batches(SlowTag, fn_constructor_args=(delay_s,), num_cpus=0.25, concurrency=1)
        .write(IcebergSink(TABLE, catalog=catalog(tmp)))
    )


def checkpoint(tmp: str) -> object:
    from tideflow.streaming import CheckpointConfig

    return CheckpointConfig(uri=f"{tmp}/ckpt", interval_s=0.3, retain=50)


def main(bootstrap: str, topic: str, tmp: str) -> None:
    import ray

    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": here}},
    )
    pipe = pipeline(bootstrap, topic, tmp, delay_s=0.35, batch=20)
    pipe.run(job_id=JOB, checkpoint=checkpoint(tmp), progress=False)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
