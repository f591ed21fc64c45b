"""Runs the recovery pipeline in its own process, to be killed with SIGKILL by a test."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

import ray
from _udfs import Slow, count_per_key, rows

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.testing import CollectingSink, TestSource


def main(tmp: str, log: str, n: int, batch: int) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": here}},
    )
    source = TestSource([rows(batch, start) for start in range(0, n, batch)])
    (
        Pipeline.read(source, batch_size=batch)
        .map_batches(Slow, num_cpus=0.25, concurrency=2, fn_constructor_args=(0.2, log))
        .stateful_map("key", count_per_key, partitions=2, num_cpus=0.25)
        .write(CollectingSink(f"{tmp}/out"))
        .run(
            job_id="d",
            checkpoint=CheckpointConfig(uri=f"{tmp}/ckpt", interval_s=0.3, retain=50),
            progress=False,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
