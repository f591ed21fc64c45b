"""Kafka test helpers that run inside Ray workers, and a driver to be killed with SIGKILL.

``python _kafka_driver.py BOOTSTRAP TOPIC TMP`` runs the Kafka → map → Parquet job of
``test_kafka.py`` (job id ``k``, a slow map) until it is killed.
"""

from __future__ import annotations

import os
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")


def tag(table: pa.Table) -> pa.Table:
    """Keep a message's coordinates and its ``n``; add ``twice`` = 2 n."""
    table = table.select(["topic", "partition", "offset", "n"])
    return table.append_column("twice", pc.multiply(table.column("n"), 2))


class SlowTag:
    """:func:`tag`, taking ``delay_s`` per batch (so that a test can kill the job mid-run)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def __call__(self, table: pa.Table) -> pa.Table:
        time.sleep(self.delay_s)
        return tag(table)


def pipeline(bootstrap: str, topic: str, tmp: str, *, delay_s: float, batch: int) -> object:
    from tideflow.streaming import Pipeline
    from tideflow.streaming.connectors import KafkaSource, ParquetSink

    source = KafkaSource(
        topics=topic, bootstrap_servers=bootstrap, value_format="json", until="now"
    )
    return (
        Pipeline.read(source, batch_size=batch)
        .map_batches(SlowTag, fn_constructor_args=(delay_s,), num_cpus=0.25, concurrency=1)
        .write(ParquetSink(f"{tmp}/out"))
    )


def main(bootstrap: str, topic: str, tmp: str) -> None:
    import ray

    from tideflow.streaming import CheckpointConfig

    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": here}},
    )
    pipe = pipeline(bootstrap, topic, tmp, delay_s=0.25, batch=20)
    pipe.run(  # type: ignore[attr-defined]
        job_id="k",
        checkpoint=CheckpointConfig(uri=f"{tmp}/ckpt", interval_s=0.3, retain=50),
        progress=False,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
