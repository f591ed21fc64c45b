# --8<-- [start:example]
"""A connector of your own: a source of numbered rows, split in parts that resume by position."""

from collections.abc import Sequence

import pyarrow as pa

from tideflow.streaming import Pipeline
from tideflow.streaming.connectors import JobContext, Source, Split, SplitReader


class RangeReader(SplitReader):
    def __init__(self, start: int, stop: int) -> None:
        self.next, self.stop = start, stop  # state comes from open(), never from a constructor

    def read(self, max_rows: int) -> pa.Table | None:
        if self.next >= self.stop:
            return None
        end = min(self.stop, self.next + max_rows)
        batch = pa.table({"n": pa.array(range(self.next, end), pa.int64())})
        self.next = end
        return batch

    @property
    def finished(self) -> bool:
        return self.next >= self.stop

    def snapshot(self) -> dict:
        return {"next": self.next}  # resume *after* the last batch returned


class RangeSource(Source):
    """Numbers 0..total-1 in `parts` splits (picklable: it is shipped to the reader actor)."""

    def __init__(self, total: int, parts: int) -> None:
        self.total, self.parts = total, parts

    @property
    def bounded(self) -> bool:
        return True

    def discover(self, ctx: JobContext) -> Sequence[Split]:
        size = -(-self.total // self.parts)
        bounds = [(i, min(self.total, i + size)) for i in range(0, self.total, size)]
        return [Split(split_id=f"range-{a}", info={"start": a, "stop": b}) for a, b in bounds]

    def open(self, split: Split, state: dict | None, ctx: JobContext) -> SplitReader:
        start = state["next"] if state else split.info["start"]
        return RangeReader(start, split.info["stop"])


batches = Pipeline.read(RangeSource(total=1000, parts=4), batch_size=100).iter_batches()
numbers = sorted(n for batch in batches for n in batch["n"].to_pylist())
print(len(numbers), numbers[:3], numbers[-1])
assert numbers == list(range(1000))
# --8<-- [end:example]
