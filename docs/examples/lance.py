# --8<-- [start:example]
"""Lance: vectors appended one version per epoch, with an index, then read back."""

import tempfile

import lance
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import LanceSink, LanceSource, ParquetSource

root = tempfile.mkdtemp()
ids = list(range(600))
pq.write_table(pa.table({"id": ids, "text": [f"row {i}" for i in ids]}), f"{root}/in.parquet")


def embed(batch: pa.Table) -> pa.Table:  # a stand-in for a real embedding model
    vectors = np.random.default_rng(0).random((batch.num_rows, 16), dtype=np.float32)
    flat = pa.array(vectors.ravel())
    return batch.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, 16))


index = {"column": "vector", "index_type": "IVF_PQ", "num_partitions": 4, "num_sub_vectors": 4}
(
    Pipeline.read(ParquetSource(f"{root}/in.parquet"), batch_size=200)
    .map_batches(embed)
    .write(LanceSink(f"{root}/rows.lance", index=index, index_every_rows=500))
    .run(job_id="to-lance", checkpoint=CheckpointConfig(uri=f"{root}/ckpt", interval_s=1))
)
dataset = lance.dataset(f"{root}/rows.lance")
print(dataset.count_rows(), [i.name for i in dataset.describe_indices()])

# Re-process one version of the dataset (bounded; resumes by fragment and row).
again = Pipeline.read(LanceSource(f"{root}/rows.lance", version=dataset.version))
assert sum(batch.num_rows for batch in again.iter_batches()) == dataset.count_rows() == 600
# --8<-- [end:example]
