# --8<-- [start:example]
"""Quickstart: a first pipeline, from Parquet files to Parquet files, checkpointed."""

import tempfile

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import ParquetSink, ParquetSource

root = tempfile.mkdtemp()
pq.write_table(
    pa.table({"id": range(1000), "text": [f"row {i}" for i in range(1000)]}), f"{root}/in.parquet"
)


def add_length(batch: pa.Table) -> pa.Table:  # any function of an Arrow table
    return batch.append_column("length", pc.utf8_length(batch["text"]))


result = (
    Pipeline.read(ParquetSource(f"{root}/in.parquet"), batch_size=250)
    .map_batches(add_length, concurrency=(1, 2))  # an elastic actor pool of 1 to 2 actors
    .write(ParquetSink(f"{root}/out"))
    .run(job_id="quickstart", checkpoint=CheckpointConfig(uri=f"{root}/ckpt", interval_s=1))
)
print(result.rows_out, "rows written;", pq.read_table(f"{root}/out").column_names)
assert pq.read_table(f"{root}/out").num_rows == 1000
# --8<-- [end:example]
