# --8<-- [start:example]
"""Iceberg: Parquet in, one Iceberg snapshot per checkpoint out, on an embedded SQLite catalog."""

import tempfile

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import IcebergSink, IcebergSource, ParquetSource, load_catalog

root = tempfile.mkdtemp()
catalog = {"uri": f"sqlite:///{root}/catalog.db", "warehouse": f"{root}/warehouse"}
ids = list(range(1000))
pq.write_table(pa.table({"id": ids, "text": [f"row {i}" for i in ids]}), f"{root}/in.parquet")


def add_length(batch: pa.Table) -> pa.Table:
    return batch.append_column("length", pc.utf8_length(batch["text"]))


(
    Pipeline.read(ParquetSource(f"{root}/in.parquet"))
    .map_batches(add_length)
    .write(IcebergSink("demo.rows", catalog=catalog))  # namespace and table are created
    .run(job_id="to-iceberg", checkpoint=CheckpointConfig(uri=f"{root}/ckpt", interval_s=1))
)
table = load_catalog(**catalog).load_table("demo.rows")
print(len(table.scan().to_arrow()), [s.summary["tideflow.epoch"] for s in table.snapshots()])

# Read it back: bounded, the latest snapshot at the job's first start (pinned for reruns).
rows = Pipeline.read(IcebergSource("demo.rows", catalog=catalog)).iter_batches()
assert sum(batch.num_rows for batch in rows) == 1000
# --8<-- [end:example]
