"""The keyed stateful operator: per-key state, partitioned by key, snapshotted at barriers.

Rows are routed to ``partitions`` actors by a stable hash of their key: every partition
actor receives the batch's reference and keeps its own rows (no extra task, no copy
through the driver). Each actor keeps a dict from key to state and calls the user's
``fn(state, row) -> (state, emitted)`` row by row, in order. At a checkpoint barrier the
executor asks every partition for a snapshot *after* the epoch's last batch and *before*
the next epoch's first (an aligned barrier); the snapshots go into the checkpoint, and a
rerun builds the actors from them.

Keyed timers (processing time, like Flink's): with ``timer_s``, each row of a key (re)arms
the key's timer ``timer_s`` seconds later, and :meth:`KeyedWorker.fire_timers` runs
``on_timer(key, state) -> (state, emitted)`` for the keys whose timer is due. Timers are
wall-clock times, part of the snapshot, so a timer armed before a crash fires after the
rerun restores it. At the end of a bounded input :meth:`KeyedWorker.end` runs
``on_end(key, state) -> emitted`` for every key left and forgets them all (like Bytewax's
``on_eof``), so the final checkpoint holds no state that a rerun could emit again.
"""

from __future__ import annotations

import heapq
import json
import pickle
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from tideflow.core.clock import Clock
from tideflow.streaming._worker import DEAD_LETTER_SCHEMA, payload_table, warm_up

__all__ = ["KeyedWorker", "WallClock", "partition_by_key"]

_SNAPSHOT_FORMAT = "tideflow.keyed/2"
"""Marks a snapshot ``(format, states, timers)``; an older snapshot is the states dict."""


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


class WallClock:
    """Processing time: :func:`time.time` (timers outlive the process, so not monotonic)."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "WallClock()"


class _Timers:
    """Each key's due time, with a heap for the earliest (stale entries skipped lazily)."""

    def __init__(self, due: dict[Any, float] | None = None) -> None:
        self.due: dict[Any, float] = dict(due or {})
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = 0
        for key, at in self.due.items():
            self._push(key, at)

    def _push(self, key: Any, at: float) -> None:
        self._seq += 1  # keys need not be comparable: ties break on insertion order
        heapq.heappush(self._heap, (at, self._seq, key))

    def arm(self, key: Any, at: float) -> None:
        self.due[key] = at
        self._push(key, at)
        if len(self._heap) > 2 * len(self.due) + 64:  # every row re-arms: drop stale ones
            self._heap = []
            for k, t in self.due.items():
                self._push(k, t)

    def cancel(self, key: Any) -> None:
        self.due.pop(key, None)

    def clear(self) -> None:
        self.due.clear()
        self._heap.clear()

    def _live_head(self) -> tuple[float, int, Any] | None:
        while self._heap:
            at, _, key = head = self._heap[0]
            if self.due.get(key) == at:
                return head
            heapq.heappop(self._heap)
        return None

    def next_due(self) -> float | None:
        head = self._live_head()
        return head[0] if head is not None else None

    def pop_due(self, now: float) -> Iterator[tuple[Any, float]]:
        """Take the timers due at ``now`` (one at a time, earliest first)."""
        while (head := self._live_head()) is not None and head[0] <= now:
            heapq.heappop(self._heap)
            del self.due[head[2]]
            yield head[2], head[0]


def _load(snapshot: bytes | None) -> tuple[dict[Any, Any], dict[Any, float]]:
    if not snapshot:
        return {}, {}
    value = pickle.loads(snapshot)
    if isinstance(value, tuple) and value and value[0] == _SNAPSHOT_FORMAT:
        return value[1], value[2]
    return value, {}  # written before timers existed: the states alone


class KeyedWorker:
    """One partition of a keyed stage (a plain Ray actor, restarted from checkpoints).

    Every call returns ``(meta, (rows, dead letters))``; ``meta["next_due"]`` is the
    partition's earliest timer (None: none), which tells the driver when to call
    :meth:`fire_timers`. ``clock`` arms the timers (default: :class:`WallClock`).
    """

    def __init__(
        self,
        spec: Any,
        key: str,
        state: bytes | None,
        *,
        index: int = 0,
        partitions: int = 1,
        clock: Clock | None = None,
    ) -> None:
        self._name = spec.name
        self._key = key
        self._index = index
        self._partitions = partitions
        self._timer_s: float | None = getattr(spec, "timer_s", None)
        self._on_timer: Callable[[Any, Any], Any] | None = getattr(spec, "on_timer", None)
        self._on_end: Callable[[Any, Any], Any] | None = getattr(spec, "on_end", None)
        self._clock = clock if clock is not None else WallClock()
        warm_up()
        fn = spec.udf
        if spec.is_class:
            fn = fn(*spec.constructor_args, **dict(spec.constructor_kwargs))
        self._fn = fn
        self._states, due = _load(state)
        self._timers = _Timers(due)

    def process(self, payload: Any) -> tuple[dict[str, Any], tuple[pa.Table, pa.Table | None]]:
        """Run ``fn`` on this partition's rows of a batch, in order."""
        table = payload_table(payload)
        if self._partitions > 1:
            table = partition_by_key(table, self._key, self._partitions)[self._index]
        start = time.time()
        now = self._clock.now()
        out: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        for row in table.to_pylist():
            k = row[self._key]
            result = self._run(dead, row, self._fn, self._states.get(k), row)
            if result is None:
                continue
            state, emitted = result
            self._keep(k, state)
            if state is not None and self._timer_s is not None:
                self._timers.arm(k, now + self._timer_s)
            out.extend(emitted)
        return self._answer(table.num_rows, out, dead, start)

    def fire_timers(self, now: float) -> tuple[dict[str, Any], tuple[pa.Table, pa.Table | None]]:
        """Run ``on_timer(key, state)`` for every key whose timer is due at ``now`` (the
        driver's clock), earliest first. A timer fires once: the key's next row arms it
        again. A timer whose ``on_timer`` raises is dropped (a dead letter says why)."""
        start = time.time()
        out: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        if self._on_timer is not None:
            for k, due in self._timers.pop_due(now):
                record = {self._key: k, "timer_due": due}
                result = self._run(dead, record, self._on_timer, k, self._states.get(k))
                if result is not None:
                    self._keep(k, result[0])
                    out.extend(result[1])
        return self._answer(0, out, dead, start)

    def end(self) -> tuple[dict[str, Any], tuple[pa.Table, pa.Table | None]]:
        """The input ended: run ``on_end(key, state) -> emitted`` for every key left (in
        the order the keys came), then forget every key and timer."""
        start = time.time()
        out: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        if self._on_end is not None:
            on_end = self._on_end
            for k, state in self._states.items():
                record = {self._key: k, "end_of_input": True}
                result = self._run(dead, record, lambda k, s: (None, on_end(k, s)), k, state)
                if result is not None:
                    out.extend(result[1])
            self._states.clear()
            self._timers.clear()
        return self._answer(0, out, dead, start)

    def _run(
        self, dead: list[dict[str, Any]], record: dict[str, Any], fn: Any, *args: Any
    ) -> tuple[Any, list[dict[str, Any]]] | None:
        """``fn(*args) -> (state, emitted)`` as (state, rows); None and a dead letter
        (``record`` with the error) when it raises."""
        try:
            state, emitted = fn(*args)
            return state, list(_emitted(emitted))
        except Exception as error:
            dead.append(
                {
                    "stage": self._name,
                    "error": f"{type(error).__name__}: {error}",
                    "record": json.dumps(record, default=str),
                    "epoch": None,
                }
            )
            return None

    def _keep(self, k: Any, state: Any) -> None:
        if state is None:  # the key is forgotten, and its timer with it
            self._states.pop(k, None)
            self._timers.cancel(k)
        else:
            self._states[k] = state

    def _answer(
        self, rows_in: int, out: list[dict[str, Any]], dead: list[dict[str, Any]], start: float
    ) -> tuple[dict[str, Any], tuple[pa.Table, pa.Table | None]]:
        dead_table = pa.Table.from_pylist(dead, schema=DEAD_LETTER_SCHEMA) if dead else None
        meta = {
            "rows_in": rows_in,
            "rows_out": len(out),
            "dead": len(dead),
            "start": start,
            "end": time.time(),
            "next_due": self._timers.next_due(),
        }
        return meta, (pa.Table.from_pylist(out), dead_table)

    def snapshot(self) -> bytes:
        return pickle.dumps((_SNAPSHOT_FORMAT, self._states, self._timers.due))

    def keys(self) -> int:
        return len(self._states)
