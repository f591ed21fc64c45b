"""Functions, classes and sinks the engine tests run inside Ray workers (importable there)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tideflow.streaming.connectors import JobContext, ParquetSink, SinkWriter, Split, SplitReader
from tideflow.streaming.testing import CollectingSink, TestSource

KEYS = 7


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Rows ``id`` = start..start+n-1, ``key`` = id % KEYS: per key, ids increase."""
    return [{"id": i, "key": i % KEYS} for i in range(start, start + n)]


def add_one(table: pa.Table) -> pa.Table:
    return table.append_column("x", pc.add(table.column("id"), 1))


class FailOn:
    """Raises for ids divisible by ``every`` (a bad record, not a crash)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def __call__(self, table: pa.Table) -> pa.Table:
        ids = table.column("id").to_pylist()
        bad = [i for i in ids if i % self.every == self.every - 1]
        if bad:
            raise ValueError(f"cannot process id {bad[0]}")
        return table


def always_fails(table: pa.Table) -> pa.Table:
    raise RuntimeError("this stage fails on every record")


class CrashOnce:
    """Kills its own process the first time it sees ``crash_id`` (flag file marks it)."""

    def __init__(self, crash_id: int, flag: str, log: str | None = None) -> None:
        self.crash_id = crash_id
        self.flag = Path(flag)
        self.log = log

    def __call__(self, table: pa.Table) -> pa.Table:
        ids = table.column("id").to_pylist()
        if self.log:
            with open(self.log, "a") as out:
                out.write("".join(f"{i}\n" for i in ids))
        if self.crash_id in ids and not self.flag.exists():
            self.flag.write_text("crashed")
            os._exit(1)
        return table


class Slow:
    """Sleeps per batch and logs the ids it processed (to count re-processing)."""

    def __init__(self, seconds: float, log: str | None = None) -> None:
        self.seconds = seconds
        self.log = log

    def __call__(self, table: pa.Table) -> pa.Table:
        time.sleep(self.seconds)
        if self.log:
            with open(self.log, "a") as out:
                out.write("".join(f"{i}\n" for i in table.column("id").to_pylist()))
        return table


class SlowLogPid(Slow):
    """:class:`Slow`, logging the process id of the actor that ran each batch to ``pids``
    (one line per batch)."""

    def __init__(self, seconds: float, pids: str) -> None:
        super().__init__(seconds)
        self.pids = pids

    def __call__(self, table: pa.Table) -> pa.Table:
        import os

        with open(self.pids, "a") as out:
            out.write(f"{os.getpid()}\n")
        return super().__call__(table)


class TimedSleep:
    """Sleeps ``slow_s`` on the batch holding id ``slow_id``, else ``fast_s``; adds the
    call's start and end times (``time.time()``) and the actor's process id as columns."""

    def __init__(self, slow_id: int, slow_s: float, fast_s: float) -> None:
        self.slow_id, self.slow_s, self.fast_s = slow_id, slow_s, fast_s

    def __call__(self, table: pa.Table) -> pa.Table:
        import os

        start = time.time()
        slow = self.slow_id in table.column("id").to_pylist()
        time.sleep(self.slow_s if slow else self.fast_s)
        n = table.num_rows
        return (
            table.append_column("start", pa.array([start] * n, pa.float64()))
            .append_column("end", pa.array([time.time()] * n, pa.float64()))
            .append_column("pid", pa.array([os.getpid()] * n, pa.int64()))
        )


def count_per_key(state: int | None, row: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Keyed state: how many rows of this key so far; emits the row with its rank ``n``."""
    n = (state or 0) + 1
    return n, {"id": row["id"], "key": row["key"], "n": n}


class FlakySink(CollectingSink):
    """A collecting sink that fails once: in pre-commit or commit of an epoch, or in ``recover``."""

    def __init__(
        self,
        path: str,
        flag: str,
        *,
        precommit_epoch: int | None = None,
        recover_run: int | None = None,
        commit_epoch: int | None = None,
    ) -> None:
        super().__init__(path)
        self.flag = flag
        self.precommit_epoch = precommit_epoch
        self.recover_run = recover_run
        self.commit_epoch = commit_epoch

    def _trip(self) -> bool:
        if Path(self.flag).exists():
            return False
        Path(self.flag).write_text("tripped")
        return True

    def writer(self, ctx: Any, index: int) -> Any:
        writer = super().writer(ctx, index)
        sink = self

        class _Writer(type(writer)):  # type: ignore[misc]
            def precommit(self, epoch: int) -> Any:
                if (
                    sink.precommit_epoch is not None
                    and epoch >= sink.precommit_epoch
                    and sink._trip()
                ):
                    raise OSError(f"disk full while pre-committing epoch {epoch}")
                return super().precommit(epoch)

        writer.__class__ = _Writer
        return writer

    def commit(self, ctx: Any, epoch: int, precommits: Any) -> None:
        if self.commit_epoch is not None and epoch >= self.commit_epoch and self._trip():
            raise OSError(f"object store refused the commit of epoch {epoch}")
        super().commit(ctx, epoch, precommits)

    def recover(self, ctx: Any, last_epoch: int | None) -> None:
        if self.recover_run is not None and ctx.run == self.recover_run and self._trip():
            raise OSError("storage unavailable during recovery")
        super().recover(ctx, last_epoch)


class SlowCommitSink(CollectingSink):
    """A collecting sink whose commit of ``epoch`` waits (up to ``wait_s``) for the file
    ``release`` to exist, and notes in ``release + ".commit"`` whether the file was there
    when the commit began and whether it came before the wait ran out."""

    def __init__(self, path: str, release: str, *, epoch: int = 1, wait_s: float = 30.0) -> None:
        super().__init__(path)
        self.release = release
        self.epoch = epoch
        self.wait_s = wait_s

    def commit(self, ctx: Any, epoch: int, precommits: Any) -> None:
        if epoch == self.epoch:
            release = Path(self.release)
            there_at_start = release.exists()
            deadline = time.monotonic() + self.wait_s
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            note = {"there_at_start": there_at_start, "released": release.exists()}
            Path(self.release + ".commit").write_text(json.dumps(note))
        super().commit(ctx, epoch, precommits)


class FullDiskSink(CollectingSink):
    """A collecting sink whose writer fails every write, as on a full disk (a plain error)."""

    def writer(self, ctx: Any, index: int) -> Any:
        writer = super().writer(ctx, index)

        class _Writer(type(writer)):  # type: ignore[misc]
            def write(self, epoch: int, table: pa.Table) -> None:
                raise ValueError("disk is full at /x")

        writer.__class__ = _Writer
        return writer


class Poison:
    """Kills its own process whenever a batch holds ``poison_id`` (a record that crashes
    native code, say); every other row passes."""

    def __init__(self, poison_id: int) -> None:
        self.poison_id = poison_id

    def __call__(self, table: pa.Table) -> pa.Table:
        if self.poison_id in table.column("id").to_pylist():
            os._exit(1)
        return table


@dataclass(frozen=True, repr=False)
class RecordingSource(TestSource):
    """A TestSource that appends every ``commit_positions`` call (JSON lines) to a file, and
    whose reader reports rows with ``bad=True`` as undecodable (they never reach a stage)."""

    __test__ = False

    log: str = ""

    def commit_positions(self, ctx: JobContext, positions: Mapping[str, Any]) -> None:
        with open(self.log, "a") as out:
            out.write(json.dumps(dict(positions)) + "\n")

    def open(self, split: Split, state: Any, ctx: JobContext) -> SplitReader:
        return _Undecodable(super().open(split, state, ctx))


class _Undecodable(SplitReader):
    def __init__(self, inner: SplitReader) -> None:
        self._inner = inner
        self._dead: list[dict[str, Any]] = []

    @property
    def finished(self) -> bool:
        return self._inner.finished

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def read(self, max_rows: int) -> pa.Table | None:
        table = self._inner.read(max_rows)
        if table is None or "bad" not in table.column_names:
            return table
        bad = table.column("bad").to_pylist()
        for row, is_bad in zip(table.to_pylist(), bad, strict=True):
            if is_bad:
                letter = {"error": "ValueError: cannot decode", "record": row}
                if "offset" in row:
                    letter["offset"] = row["offset"]
                self._dead.append(letter)
        return table.filter(pc.invert(table.column("bad"))).drop_columns(["bad"])

    def dead_letters(self) -> list[dict[str, Any]]:
        taken, self._dead = self._dead, []
        return taken


class NamesBadRows:
    """A batch function that names its bad rows (ids divisible by 5) with RecordErrors and
    counts its calls in ``log`` (one line per call)."""

    def __init__(self, log: str) -> None:
        self.log = log

    def __call__(self, table: pa.Table) -> pa.Table:
        from tideflow.streaming import RecordErrors

        with open(self.log, "a") as out:
            out.write(f"{table.num_rows}\n")
        ids = table.column("id").to_pylist()
        bad = {i: ValueError(f"id {v} is a multiple of 5") for i, v in enumerate(ids) if v % 5 == 0}
        good = table.filter(pa.array([v % 5 != 0 for v in ids]))
        if bad:
            raise RecordErrors(bad, output=good)
        return table


def fan_out_7(table: pa.Table) -> pa.Table:
    """Each row becomes 7 (``sub`` 0..6): a stage that fans out, like frames of a video."""
    ids = [i for i in table.column("id").to_pylist() for _ in range(7)]
    return pa.table({"id": ids, "sub": list(range(7)) * table.num_rows})


def tag_batch(table: pa.Table) -> pa.Table:
    """Mark each row with the size and a unique id of the batch the stage was called with."""
    import uuid

    batch_id = uuid.uuid4().hex
    return table.append_column(
        "batch_rows", pa.array([table.num_rows] * table.num_rows)
    ).append_column("batch_id", pa.array([batch_id] * table.num_rows))


class _SlowWriter(SinkWriter):
    """Delegates to a real writer; each write takes ``seconds`` longer (a slow store)."""

    def __init__(self, inner: SinkWriter, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def write(self, epoch: int, table: pa.Table) -> None:
        time.sleep(self.seconds)
        self.inner.write(epoch, table)

    def precommit(self, epoch: int) -> Any:
        return self.inner.precommit(epoch)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True, kw_only=True, repr=False)
class SlowParquetSink(ParquetSink):
    """A ParquetSink whose writes take 0.1 s each, so that writes overlap."""

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        return _SlowWriter(super().writer(ctx, index), 0.1)


def gather_three(state: list[int] | None, row: dict[str, Any]) -> tuple[Any, Any]:
    """Keyed state: a key's ids gathered in groups of three; a complete group is emitted."""
    ids = [*(state or []), row["id"]]
    if len(ids) == 3:
        return None, {"key": row["key"], "ids": ids, "complete": True}
    return ids, None


def flush_group(key: int, ids: list[int]) -> tuple[None, dict[str, Any]]:
    """``on_timer``: emit a key's incomplete group and forget the key."""
    return None, {"key": key, "ids": ids, "complete": False}


def rest_of_group(key: int, ids: list[int]) -> dict[str, Any]:
    """``on_end``: emit a key's incomplete group."""
    return {"key": key, "ids": ids, "complete": False}


class CountPerKeyCrashOnce:
    """``count_per_key``, whose partition actor kills its own process the first time it sees
    ``crash_id`` (the flag file marks it): a keyed stage lost with its state."""

    def __init__(self, crash_id: int, flag: str) -> None:
        self.crash_id = crash_id
        self.flag = Path(flag)

    def __call__(self, state: int | None, row: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if row["id"] == self.crash_id and not self.flag.exists():
            self.flag.write_text("crashed")
            os._exit(1)
        return count_per_key(state, row)


class TagNode:
    """Adds the node it runs on to every row (column ``node``), sleeps ``seconds`` per batch
    and logs each batch's node and start time (JSON lines) to ``log``."""

    def __init__(self, seconds: float, log: str) -> None:
        import ray

        self.seconds = seconds
        self.log = log
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, table: pa.Table) -> pa.Table:
        import json
        import time

        started = time.time()
        time.sleep(self.seconds)
        with open(self.log, "a") as out:
            out.write(json.dumps({"node": self.node, "start": started}) + "\n")
        return table.append_column("node", pa.array([self.node] * table.num_rows))


class LogPid:
    """Logs the process id that ran each batch to ``pids`` (one line per batch) and passes
    the rows on: where a stage runs (its own actor, or the I/O actor when fused)."""

    def __init__(self, pids: str) -> None:
        self.pids = pids

    def __call__(self, table: pa.Table) -> pa.Table:
        with open(self.pids, "a") as out:
            out.write(f"{os.getpid()}\n")
        return table


def keep_even(row: dict[str, Any]) -> bool:
    return bool(row["id"] % 2 == 0)


class NoModel:
    """A stage class whose constructor fails, as one loading a model from a wrong path."""

    def __init__(self, path: str) -> None:
        raise FileNotFoundError(f"no model at {path}")

    def __call__(self, table: pa.Table) -> pa.Table:  # pragma: no cover (never built)
        return table
