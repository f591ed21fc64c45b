"""The keyed stateful operator: per-key state, partitioned by key, snapshotted at barriers.

Rows are routed to ``partitions`` actors by a stable hash of their key: every partition
actor receives the batch's reference and keeps its own rows (no extra task, no copy
through the driver). Each actor keeps a dict from key to state and calls the user's
``fn(state, row) -> (state, emitted)`` row by row, in order. At a checkpoint barrier the
executor asks every partition for a snapshot *after* the epoch's last batch and *before*
the next epoch's first (an aligned barrier); the snapshots go into the checkpoint, and a
rerun builds the actors from them.
"""

from __future__ import annotations

import json
import pickle
import time
import zlib
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from tideflow.streaming._worker import DEAD_LETTER_SCHEMA, payload_table, warm_up

__all__ = ["KeyedWorker", "partition_by_key"]


def _stable_hash(value: Any) -> int:
    return zlib.crc32(repr(value).encode())


def partition_by_key(payload: Any, key: str, partitions: int) -> tuple[pa.Table, ...]:
    """Split a batch into ``partitions`` tables by a stable hash of ``key`` (order kept)."""
    table = payload_table(payload)
    if key not in table.column_names:
        message = f"keyed stage: rows have no key column {key!r}; columns: {table.column_names}"
        raise KeyError(message)
    buckets = [_stable_hash(v) % partitions for v in table.column(key).to_pylist()]
    indices: list[list[int]] = [[] for _ in range(partitions)]
    for row, bucket in enumerate(buckets):
        indices[bucket].append(row)
    return tuple(table.take(pa.array(ix, pa.int64())) for ix in indices)


def _emitted(value: Any) -> Iterable[dict[str, Any]]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return (value,)
    return value


class KeyedWorker:
    """One partition of a keyed stage (a plain Ray actor, restarted from checkpoints)."""

    def __init__(
        self, spec: Any, key: str, state: bytes | None, *, index: int = 0, partitions: int = 1
    ) -> None:
        self._name = spec.name
        self._key = key
        self._index = index
        self._partitions = partitions
        warm_up()
        fn = spec.udf
        if spec.is_class:
            fn = fn(*spec.constructor_args, **dict(spec.constructor_kwargs))
        self._fn = fn
        self._states: dict[Any, Any] = pickle.loads(state) if state else {}

    def process(self, payload: Any) -> tuple[dict[str, Any], tuple[pa.Table, pa.Table | None]]:
        table = payload_table(payload)
        if self._partitions > 1:
            table = partition_by_key(table, self._key, self._partitions)[self._index]
        start = time.time()
        out: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        for row in table.to_pylist():
            k = row[self._key]
            try:
                state, emitted = self._fn(self._states.get(k), row)
                rows = list(_emitted(emitted))
            except Exception as error:
                dead.append(
                    {
                        "stage": self._name,
                        "error": f"{type(error).__name__}: {error}",
                        "record": json.dumps(row, default=str),
                        "epoch": None,
                    }
                )
                continue
            if state is None:
                self._states.pop(k, None)
            else:
                self._states[k] = state
            out.extend(rows)
        end = time.time()
        dead_table = pa.Table.from_pylist(dead, schema=DEAD_LETTER_SCHEMA) if dead else None
        meta = {
            "rows_in": table.num_rows,
            "rows_out": len(out),
            "dead": len(dead),
            "start": start,
            "end": end,
        }
        return meta, (pa.Table.from_pylist(out), dead_table)

    def snapshot(self) -> bytes:
        return pickle.dumps(self._states)

    def keys(self) -> int:
        return len(self._states)
