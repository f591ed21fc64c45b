# --8<-- [start:example]
"""Files: JSON lines in, Parquet out, a bad record dead-lettered, and a rerun that resumes."""

import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import JSONLSource, ParquetSink

root = Path(tempfile.mkdtemp())
(root / "in").mkdir()
for part in range(3):  # a directory of files: split into batch groups that resume by position
    rows = [{"id": part * 100 + i, "amount": i} for i in range(100)]
    (root / "in" / f"part-{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def price(row: dict) -> dict:  # a row function; one raises on a bad record
    if row["id"] == 42:
        raise ValueError("no price for item 42")
    return {**row, "price": row["amount"] * 1.5}


pipeline = (
    Pipeline.read(JSONLSource(str(root / "in")), batch_size=50)
    .map(price)
    .write(ParquetSink(str(root / "out")))
)
checkpoint = CheckpointConfig(uri=str(root / "ckpt"), interval_s=1)
first = pipeline.run(job_id="prices", checkpoint=checkpoint)
print(first.rows_out, "rows,", first.dead_letters, "dead letter")  # 299 rows, 1 dead letter

again = pipeline.run(job_id="prices", checkpoint=checkpoint)  # same job id: resumes, at the end
print(again.rows_out, "new rows; output still", pq.read_table(root / "out").num_rows)
assert (first.rows_out, first.dead_letters, again.rows_out) == (299, 1, 0)
# --8<-- [end:example]
