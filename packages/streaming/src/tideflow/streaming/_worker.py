"""What runs inside the actors: stage functions with dead-lettering, readers and writers."""

from __future__ import annotations

import json
import math
import pickle
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray

from tideflow.core.scheduler import WithMeta
from tideflow.streaming._execution import bisect
from tideflow.streaming.connectors._base import JobContext, Sink, Source, Split, SplitReader
from tideflow.streaming.errors import ConfigError, RecordErrors

__all__ = [
    "DEAD_LETTER_SCHEMA",
    "FusedChain",
    "ReaderWorker",
    "SinkWorker",
    "SinkWriterActor",
    "StageWorker",
    "Written",
    "concat_payloads",
    "payload_table",
    "slice_payload",
]

DEAD_LETTER_SCHEMA = pa.schema(
    [("stage", pa.string()), ("error", pa.string()), ("record", pa.string()), ("epoch", pa.int64())]
)


def payload_table(payload: Any) -> pa.Table:
    """The rows a batch carries: sources send tables, stages send (rows, dead letters)."""
    return payload[0] if isinstance(payload, tuple) else payload


@ray.remote(num_cpus=0)
def slice_payload(payload: Any, start: int, length: int) -> pa.Table:
    """Rows ``start`` to ``start + length`` of a batch (to retry a failing batch in halves)."""
    return payload_table(payload).slice(start, length)


def _join(payloads: Iterable[Any], skip: int, rows: int) -> pa.Table:
    tables = [payload_table(p) for p in payloads]
    table = (
        tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    )
    return table.slice(skip, rows).combine_chunks()


@ray.remote(num_cpus=0)
def concat_payloads(skip: int, rows: int, *payloads: Any) -> pa.Table:
    """Rows ``skip`` to ``skip + rows`` of the batches ``payloads`` one after another, as
    one contiguous table (a re-batched batch whose rows go to the dead-letter output)."""
    return _join(payloads, skip, rows)


def _as_table(value: Any, stage: str) -> pa.Table:
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if isinstance(value, dict):
        return pa.table(value)
    if hasattr(value, "to_arrow"):  # polars
        return value.to_arrow()
    if type(value).__name__ == "DataFrame":  # pandas
        return pa.Table.from_pandas(value, preserve_index=False)
    message = (
        f"stage {stage!r} returned {type(value).__name__}; expected a pyarrow Table or "
        "RecordBatch, a dict of columns, or a pandas/polars DataFrame"
    )
    raise ConfigError(message)


def _dead(stage: str, rows: list[dict[str, Any]], error: BaseException) -> pa.Table:
    text = f"{type(error).__name__}: {error}"
    return pa.table(
        {
            "stage": [stage] * len(rows),
            "error": [text] * len(rows),
            "record": [json.dumps(r, default=str) for r in rows],
            "epoch": pa.nulls(len(rows), pa.int64()),
        },
        schema=DEAD_LETTER_SCHEMA,
    )


def _source_dead(undecodable: list[dict[str, Any]]) -> pa.Table:
    """Dead-letter rows for records a source reader could not decode."""
    return pa.table(
        {
            "stage": ["source"] * len(undecodable),
            "error": [str(d.get("error", "undecodable record")) for d in undecodable],
            "record": [json.dumps(d.get("record"), default=str) for d in undecodable],
            "epoch": pa.nulls(len(undecodable), pa.int64()),
        },
        schema=DEAD_LETTER_SCHEMA,
    )


def _concat(tables: Iterable[pa.Table]) -> pa.Table | None:
    parts = [t for t in tables if t is not None and t.num_rows > 0]
    if not parts:
        return None
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def warm_up() -> None:
    """Do once, while the actor starts, what pyarrow otherwise does lazily on a batch: its
    first ``pa.array`` from Python objects imports pandas (~1 s), which would stall the
    pipeline at its first batch in every new actor."""
    table = pa.table({"warm": pa.array(["up"])})
    pickle.loads(pickle.dumps(table))


class StageWorker:
    """Runs one stage's function on batches; records that raise become dead letters.

    A batch whose function raises is split in halves, recursively, until the failing rows
    are isolated (the rule of :mod:`._execution.bisect`, here without a round trip): the
    other rows are processed normally, each failing row becomes a dead letter with the
    error. A function that fails on every row costs about 2n calls.
    """

    def __init__(self, spec: Any, *, pipelined: bool = False) -> None:
        self._name = spec.name
        self._kind = spec.kind
        self._runner = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stage-{spec.name}")
            if pipelined
            else None
        )
        warm_up()
        udf = spec.udf
        if spec.is_class:
            udf = udf(*spec.constructor_args, **dict(spec.constructor_kwargs))
        self._fn = udf

    @property
    def name(self) -> str:
        return str(self._name)

    def __repr__(self) -> str:
        # Ray prefixes an actor's log lines with this and shows it in its state API
        # (``repr_name``): which stage a worker process runs, not only its class.
        return f"StageWorker({self._name})"

    def process(self, payload: Any) -> WithMeta:
        """Run the function on one batch. Ray may call this from two threads at once (the
        actor's ``max_concurrency`` is the stage's in-flight limit): the function itself
        always runs on the one thread of ``_runner``, one batch at a time, while Ray fetches
        the next batch and stores the last result on the other — so a one-slot accelerator
        stage never waits for Ray between batches."""
        if self._runner is None:
            return self._process(payload)
        return self._runner.submit(self._process, payload).result()

    def process_parts(self, skip: int, rows: int, *payloads: Any) -> WithMeta:
        """Run the function on a re-batched batch: rows ``skip`` … ``skip + rows`` of
        ``payloads`` one after another (joined here: no task, no copy in between)."""
        return self.process(_join(payloads, skip, rows))

    def _process(self, payload: Any) -> WithMeta:
        table = payload_table(payload)
        start = time.time()
        outputs: list[pa.Table] = []
        dead: list[pa.Table] = []
        self._apply(table, outputs, dead)
        end = time.time()
        out = _concat(outputs)
        if out is None:
            out = table.schema.empty_table() if self._kind in ("filter",) else pa.table({})
        dead_table = _concat(dead)
        meta = {
            "rows_in": table.num_rows,
            "rows_out": out.num_rows,
            "dead": 0 if dead_table is None else dead_table.num_rows,
            "start": start,
            "end": end,
        }
        return WithMeta((out, dead_table), meta)

    def _apply(self, table: pa.Table, outputs: list[pa.Table], dead: list[pa.Table]) -> None:
        if table.num_rows == 0:
            return
        try:
            outputs.append(self._call(table))
        except RecordErrors as failure:  # the function named its bad rows itself
            self._named_failures(table, failure, outputs, dead)
        except Exception as error:  # the rows' own doing: no neighbour ran in this call
            if bisect.on_failure(table.num_rows) is bisect.Verdict.DEAD:
                dead.append(_dead(self._name, table.to_pylist(), error))
                return
            for start, length in bisect.halves(table.num_rows):
                self._apply(table.slice(start, length), outputs, dead)

    def _named_failures(
        self,
        table: pa.Table,
        failure: RecordErrors,
        outputs: list[pa.Table],
        dead: list[pa.Table],
    ) -> None:
        rows = table.num_rows
        bad = [i for i in failure.errors if not (isinstance(i, int) and 0 <= i < rows)]
        if bad:
            message = (
                f"stage {self._name!r} raised RecordErrors naming rows {bad[:5]}; expected "
                f"row indexes 0..{rows - 1} of its input batch"
            )
            raise ConfigError(message) from failure
        for index, error in sorted(failure.errors.items()):
            cause = error if isinstance(error, BaseException) else RuntimeError(str(error))
            dead.append(_dead(self._name, table.slice(index, 1).to_pylist(), cause))
        if failure.output is not None:
            outputs.append(_as_table(failure.output, self._name))

    def _call(self, table: pa.Table) -> pa.Table:
        if self._kind == "batches":
            return _as_table(self._fn(table), self._name)
        rows = table.to_pylist()
        if self._kind == "map":
            return pa.Table.from_pylist([self._fn(r) for r in rows])
        if self._kind == "flat_map":
            return pa.Table.from_pylist([o for r in rows for o in self._fn(r)])
        mask = pa.array([bool(self._fn(r)) for r in rows], pa.bool_())
        return table.filter(mask)


class FusedChain:
    """Fused stages (``fused=True``) run one after another in the I/O actor on each batch it
    reads or writes: each with the same rules as in a pool of its own (bad rows isolated by
    bisection, dead letters with their error), without Ray in between."""

    def __init__(self, specs: Sequence[Any]) -> None:
        self._workers = [StageWorker(spec) for spec in specs]

    def __bool__(self) -> bool:
        return bool(self._workers)

    def run(self, table: pa.Table) -> tuple[pa.Table, list[dict[str, Any]], pa.Table | None]:
        """The chain's output, each stage's call meta (as a pool's stage reports it, with
        its ``stage`` name) and the dead letters of all the stages."""
        metas: list[dict[str, Any]] = []
        dead: list[pa.Table] = []
        for worker in self._workers:
            if table.num_rows == 0:
                break
            out = worker.process(table)
            table, stage_dead = out.value
            metas.append({**out.meta, "stage": worker.name})
            if stage_dead is not None:
                dead.append(stage_dead)
        return table, metas, _concat(dead)


@dataclass(frozen=True)
class Written:
    """What a sink writer reports for one batch: the rows it wrote (after any fused stages
    before the sink), their ids in ACK mode (committed at once; in epoch mode ids come with
    the pre-commit) and the fused stages' call metas."""

    rows: int
    ids: list[Any] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)


class ReaderWorker:
    """Holds a source's open split readers; the driver asks it for the next batch of a split."""

    def __init__(self, source: Source, ctx: JobContext, priority_column: str | None = None) -> None:
        self._source = source
        self._ctx = ctx
        self._priority_column = priority_column
        self._readers: dict[str, SplitReader] = {}

    def open(self, split: Split, state: Any) -> bool:
        self._readers[split.split_id] = self._source.open(split, state, self._ctx)
        return True

    def read(
        self, split_id: str, max_rows: int
    ) -> tuple[dict[str, Any], pa.Table | None, pa.Table | None]:
        """The next batch of a split, its meta, and the records the reader could not decode
        (as dead-letter rows of stage ``source``)."""
        reader = self._readers[split_id]
        table = reader.read(max_rows)
        rows = 0 if table is None else table.num_rows
        undecodable = reader.dead_letters()
        meta: dict[str, Any] = {
            "rows": rows,
            "finished": reader.finished,
            "state": reader.snapshot(),
            "dead": len(undecodable),
        }
        column = self._priority_column
        if table is not None and rows and column is not None and column in table.column_names:
            top = pc.max(table.column(column)).as_py()
            meta["priority"] = int(top) if top is not None else 0
        offsets = self._offsets(split_id, table, undecodable)
        if offsets is not None:
            meta["offsets"] = offsets
        if reader.finished:
            reader.close()
        elif (wake := _next_awake(reader, self._source.name, split_id)) is not None:
            meta["next_awake_s"] = wake  # a delay: the driver's clock is not this process's
        dead = _source_dead(undecodable) if undecodable else None
        return meta, table, dead

    def _offsets(
        self, split_id: str, table: pa.Table | None, undecodable: list[dict[str, Any]]
    ) -> tuple[int, int] | None:
        """ACK mode: the lowest and highest record offset this read covered."""
        column = self._source.offset_column
        if column is None:
            return None
        found: list[int] = []
        if table is not None and table.num_rows:
            if column not in table.column_names:
                message = (
                    f"source {self._source.name!r} split {split_id!r}: offset_column "
                    f"{column!r} is missing from its batch; columns: {table.column_names}"
                )
                raise ConfigError(message)
            values = table.column(column)
            found += [int(pc.min(values).as_py()), int(pc.max(values).as_py())]
        found += [int(d["offset"]) for d in undecodable if d.get("offset") is not None]
        return (min(found), max(found)) if found else None


def _next_awake(reader: SplitReader, source: str, split_id: str) -> float | None:
    """The reader's ``next_awake()``: a delay in seconds (≥ 0), or None for the default."""
    wake = reader.next_awake()
    if wake is None:
        return None
    if isinstance(wake, bool) or not isinstance(wake, int | float) or not math.isfinite(wake):
        message = (
            f"source {source!r} split {split_id!r}: next_awake() must return seconds to wait "
            f"(a finite number ≥ 0) or None; got {wake!r}"
        )
        raise ConfigError(message)
    return max(0.0, float(wake))


class SinkWorker:
    """One writer of a sink: stages rows (or dead letters) per epoch and pre-commits."""

    def __init__(
        self,
        sink: Sink,
        ctx: JobContext,
        index: int,
        *,
        dead_letters: bool,
        id_column: str | None = None,
        track_dead_letters: bool = False,
    ) -> None:
        self._writer = sink.writer(ctx, index)
        self._sink = sink
        self._ctx = ctx
        self._dead_letters = dead_letters
        self._id_column = id_column
        self._track_dead = dead_letters and track_dead_letters
        # Per epoch: the ids of its rows (id_column), or its dead-letter rows (tracked).
        self._ids: dict[int, list[Any]] = {}

    def write(self, epoch: int, payload: Any) -> int:
        if self._dead_letters:
            table = payload[1] if isinstance(payload, tuple) else payload
            if table is None:
                return 0
            table = table.set_column(
                table.schema.get_field_index("epoch"),
                "epoch",
                pa.array([epoch] * table.num_rows, pa.int64()),
            )
            if self._track_dead and table.num_rows:
                self._ids.setdefault(epoch, []).extend(table.to_pylist())
        else:
            table = payload_table(payload)
            if self._id_column is not None and table.num_rows:
                if self._id_column not in table.column_names:
                    message = (
                        f"id_column {self._id_column!r} is not a column of the rows reaching "
                        f"the sink; columns: {table.column_names}"
                    )
                    raise KeyError(message)
                self._ids.setdefault(epoch, []).extend(table.column(self._id_column).to_pylist())
        if table.num_rows:
            self._writer.write(epoch, table)
        return table.num_rows

    def write_failed(self, epoch: int, payload: Any, stage: str, error: str) -> int:
        """Dead-letter a whole batch whose actor kept dying (the rows never ran)."""
        rows = payload_table(payload).to_pylist()
        table = _dead(stage, rows, RuntimeError(error))
        return self.write(epoch, (None, table))

    def precommit(self, epoch: int) -> dict[str, Any]:
        """The writer's pre-commit state and the ids of the epoch's rows (if tracked; for
        a tracked dead-letter writer, its rows)."""
        return {"state": self._writer.precommit(epoch), "ids": self._ids.pop(epoch, [])}

    def publish(self, seq: int) -> list[Any]:
        """ACK mode: pre-commit and commit what was just written as its own epoch ``seq``
        (output is visible at once); return the ids of its rows (if tracked)."""
        pre = self.precommit(seq)
        self._sink.commit(self._ctx, seq, [pre["state"]])
        ids: list[Any] = pre["ids"]
        return ids

    def close(self) -> None:
        self._writer.close()


class SinkWriterActor:
    """Writer ``index`` (≥ 1) of the sink in an actor of its own, for parallel sink writers
    (epoch mode); writer 0 lives in the :class:`IOWorker`. Same calls as the I/O actor's."""

    def __init__(self, sink: Sink, ctx: JobContext, index: int, id_column: str | None) -> None:
        warm_up()
        self._worker = SinkWorker(sink, ctx, index, dead_letters=False, id_column=id_column)

    def write(self, epoch: int, payload: Any) -> Written:
        return Written(rows=self._worker.write(epoch, payload))  # ids: with the pre-commit

    def precommit(self, epoch: int) -> dict[str, Any]:
        return self._worker.precommit(epoch)

    def close(self) -> None:
        self._worker.close()


class IOWorker:
    """The job's I/O in one actor: the source's readers, the sink's writer and the
    dead-letter writer. One process instead of three saves two actor start-ups (seconds on a
    small machine); calls run one at a time in submission order, which the protocol needs
    anyway (a pre-commit after the epoch's writes)."""

    def __init__(
        self,
        source: Source,
        sink: Sink,
        dead_sink: Sink,
        ctx: JobContext,
        *,
        priority_column: str | None = None,
        id_column: str | None = None,
        ack_seq_base: int | None = None,
        track_dead_letters: bool = False,
        read_stages: Sequence[Any] = (),
        write_stages: Sequence[Any] = (),
    ) -> None:
        warm_up()
        self._reader = ReaderWorker(source, ctx, priority_column)
        # Fused stages (``fused=True``): run here on what is read and what is written.
        self._read_chain = FusedChain(read_stages)
        self._write_chain = FusedChain(write_stages)
        self._sink = SinkWorker(sink, ctx, 0, dead_letters=False, id_column=id_column)
        self._dead = SinkWorker(
            dead_sink, ctx, 0, dead_letters=True, track_dead_letters=track_dead_letters
        )
        # ACK mode: every write is committed at once as its own "epoch", numbered from a
        # base that no earlier run of the job used (commits are idempotent by epoch).
        self._ack_seq: int | None = ack_seq_base

    def open(self, split: Split, state: Any) -> bool:
        return self._reader.open(split, state)

    def read(self, split_id: str, max_rows: int, epoch: int) -> tuple[dict[str, Any], Any]:
        meta, table, dead = self._reader.read(split_id, max_rows)
        if dead is not None:
            rows = self._write(self._dead, epoch, (None, dead))
            if rows:  # ACK mode, tracked: committed at once, reported with the read
                meta["dead_rows"] = rows
        if self._read_chain and table is not None and table.num_rows:
            # "rows" is what goes on downstream; "rows_read" what the source gave.
            table, meta["stages"], stage_dead = self._read_chain.run(table)
            meta["rows_read"], meta["rows"] = meta["rows"], table.num_rows
            if stage_dead is not None:  # epoch mode (fused stages are refused in ACK mode)
                self._write(self._dead, epoch, (None, stage_dead))
        return meta, table

    def write(self, epoch: int, payload: Any) -> Written:
        """Stage a batch (after the fused stages before the sink, if any); in ACK mode also
        commit it and report its row ids."""
        if not self._write_chain:
            ids = self._write(self._sink, epoch, payload)
            return Written(rows=payload_table(payload).num_rows, ids=ids)
        table, metas, dead = self._write_chain.run(payload_table(payload))
        if dead is not None:  # epoch mode (fused stages are refused in ACK mode)
            self._write(self._dead, epoch, (None, dead))
        ids = self._write(self._sink, epoch, table) if table.num_rows else []
        return Written(rows=table.num_rows, ids=ids, stages=metas)

    def write_dead(self, epoch: int, payload: Any) -> list[Any]:
        """Stage dead letters; in ACK mode also commit them and return them (if tracked)."""
        return self._write(self._dead, epoch, payload)

    def write_failed(self, epoch: int, payload: Any, stage: str, error: str) -> list[Any]:
        if self._ack_seq is None:
            self._dead.write_failed(epoch, payload, stage, error)
            return []
        seq = self._next_seq()
        if self._dead.write_failed(seq, payload, stage, error):
            return self._dead.publish(seq)
        return []

    def _write(self, worker: SinkWorker, epoch: int, payload: Any) -> list[Any]:
        if self._ack_seq is None:
            worker.write(epoch, payload)
            return []
        seq = self._next_seq()
        return worker.publish(seq) if worker.write(seq, payload) else []

    def _next_seq(self) -> int:
        assert self._ack_seq is not None
        self._ack_seq += 1
        return self._ack_seq - 1

    def precommit(self, epoch: int) -> dict[str, Any]:
        return self._sink.precommit(epoch)

    def precommit_dead(self, epoch: int) -> dict[str, Any]:
        return self._dead.precommit(epoch)
