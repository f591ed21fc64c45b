"""Runs an unbounded Iceberg → Lance job in its own process, to be killed with SIGKILL.

``python _table_driver.py <tmp> <catalog json> <poll_interval_s> <checkpoint_interval_s>``
follows table ``src.events`` of the catalog and writes ``<tmp>/out.lance`` as job ``inc``
with checkpoints under ``<tmp>/ckpt``, until killed. The test reruns the same job in its
own process with :func:`pipeline`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

import pyarrow as pa
import pyarrow.compute as pc

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import IcebergSource, LanceSink

TABLE = "src.events"
JOB = "inc"
DIM = 8
BATCH = 50


def embed(table: pa.Table) -> pa.Table:
    """A stand-in embedding: a small vector per row, derived from its id, at 3 ms a row (so
    that a few hundred rows span several checkpoint intervals)."""
    time.sleep(0.003 * table.num_rows)
    ids = table.column("id")
    values = pc.cast(pc.multiply(ids, 0.001), pa.float32()).to_numpy(zero_copy_only=False)
    flat = pa.array(values.repeat(DIM), pa.float32())
    return table.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, DIM))


def pipeline(tmp: str, catalog: dict[str, Any], poll_s: float) -> Pipeline:
    source = IcebergSource(TABLE, catalog=catalog, unbounded=True, poll_interval_s=poll_s)
    return (
        Pipeline.read(source, batch_size=BATCH)
        .map_batches(embed, num_cpus=0.25)
        .write(LanceSink(f"{tmp}/out.lance"))
    )


def checkpoint(tmp: str, interval_s: float) -> CheckpointConfig:
    return CheckpointConfig(uri=f"{tmp}/ckpt", interval_s=interval_s, retain=50)


def main(tmp: str, catalog: dict[str, Any], poll_s: float, interval_s: float) -> None:
    import ray

    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": here}},
    )
    pipeline(tmp, catalog, poll_s).run(
        job_id=JOB, checkpoint=checkpoint(tmp, interval_s), progress=False
    )


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
