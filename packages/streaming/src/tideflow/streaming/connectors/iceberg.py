"""Apache Iceberg tables (pyiceberg): a snapshot or incremental source and an exactly-once sink.

>>> catalog = {"type": "sql", "uri": "sqlite:////data/catalog.db", "warehouse": "/data/wh"}
>>> source = IcebergSource("raw.events", catalog=catalog, unbounded=True, poll_interval_s=2)
>>> sink = IcebergSink("clean.events", catalog=catalog)

Connectors hold the table identifier (``"namespace.table"``) and the catalog's properties
(a dict, see :func:`load_catalog`); catalogs are built where they are used (in the engine's
actors and on the driver), never in constructors, so connectors stay picklable.

**Source, bounded** (default): one snapshot — ``snapshot_id``, or the table's latest at the
job's first discovery (pinned in the job directory, so a rerun reads the same snapshot). Its
data files, sorted by path, are cut into splits of ``files_per_split`` files; a split's state
is ``{"part": file index, "row": rows returned of that file, "name": file path}``, so a
resume reopens one file and skips rows within it (deletes are applied the same way each
time, so the skip is exact).

**Source, unbounded** (``unbounded=True``): one split that follows the main branch snapshot
by snapshot and reads only what each one appended (``incremental_append_scan``); snapshots
that delete or overwrite add no rows. Its state is ``{"snapshot_id": the last snapshot read
completely (None: none yet), "next": the snapshot being read, "part": …, "row": …}`` — a
resume continues inside ``next`` without skipping or repeating a row. The table is polled
every ``poll_interval_s`` for new snapshots. It starts after ``snapshot_id``, or with
``start="earliest"`` (default) from the table's first snapshot, or with ``start="latest"``
after the latest snapshot at the first discovery (pinned).

**Sink**: each writer stages its rows of an epoch as Parquet in the job directory
(``<job_uri>/iceberg-staging/…``); when the epoch's checkpoint is durable, the driver appends
them as one snapshot whose summary holds ``tideflow.job_id`` and ``tideflow.epoch``, and in
the same metadata commit sets the table property ``tideflow.epoch.<job_id>`` to the epoch.
An epoch at or below that mark (or named by a snapshot summary) is never appended again, so
a replay after a crash — between the checkpoint and the commit, or between the commit and
the clean-up of the staging — writes nothing twice. A commit first publishes any earlier
epoch still staged (in order), so an epoch whose commit failed is not lost when a later
checkpoint was saved before the job stopped. The table (and its namespace) is created on
the first commit from ``schema`` or the first rows' schema. A fresh job (no checkpoint)
whose id already has a mark in the table fails: the id was reused without its checkpoints.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from tideflow.core.observability import get_logger
from tideflow.streaming.connectors._base import (
    JSON,
    JobContext,
    SinkWriter,
    Source,
    Split,
    SplitReader,
)
from tideflow.streaming.connectors._iceberg_catalog import IcebergTable, load_catalog
from tideflow.streaming.connectors._iceberg_schema import fit
from tideflow.streaming.connectors._kit import (
    Position,
    RemovesStaged,
    check_columns,
    check_count,
    describe_error,
    guarded,
    parse_position,
    skip_rows,
)
from tideflow.streaming.connectors._tables import EpochStaging, PartsReader, key_of, pinned
from tideflow.streaming.errors import ConfigError, SinkError, SourceError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import FileScanTask, Table

__all__ = ["IcebergSink", "IcebergSource", "load_catalog"]

JOB_PROPERTY = "tideflow.job_id"
EPOCH_PROPERTY = "tideflow.epoch"
MARK_PREFIX = "tideflow.epoch."
"""Table property ``tideflow.epoch.<job_id>``: the last epoch of that job appended."""


# -- source ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, repr=False)
class IcebergSource(IcebergTable, Source):
    """Rows of an Iceberg table: one snapshot (bounded) or every append (``unbounded``).

    ``IcebergSource("db.events", catalog={...}, snapshot_id=None, unbounded=False,
    start="earliest", poll_interval_s=1.0, files_per_split=4, columns=None)``; see the
    module docs for splits, states and guarantees.
    """

    snapshot_id: int | None = None
    """Bounded: the snapshot to read (None: the latest at the first discovery, pinned).
    Unbounded: read what was appended after this snapshot (None: see ``start``)."""
    unbounded: bool = False
    """Follow the table: read each new snapshot's appended rows, forever."""
    start: Literal["earliest", "latest"] = "earliest"
    """Unbounded without ``snapshot_id``: from the first snapshot, or only what is appended
    after the latest one at the first discovery."""
    poll_interval_s: float = 1.0
    """Unbounded: seconds between looks at the catalog for new snapshots."""
    files_per_split: int = 4
    """Bounded: data files per split (smaller splits resume more finely, read in parallel)."""
    columns: list[str] | None = None
    """Read only these columns (None: all)."""

    name = "iceberg"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.start not in ("earliest", "latest"):
            raise ConfigError(
                f'IcebergSource.start must be "earliest" or "latest"; got {self.start!r}'
            )
        poll = self.poll_interval_s
        if isinstance(poll, bool) or not isinstance(poll, int | float) or not poll > 0:
            raise ConfigError(f"IcebergSource.poll_interval_s must be > 0; got {poll!r}")
        check_count("IcebergSource", "files_per_split", self.files_per_split)
        check_columns("IcebergSource", self.columns)

    @property
    def bounded(self) -> bool:
        return not self.unbounded

    def discover(self, ctx: JobContext) -> Sequence[Split]:
        if self.unbounded:
            after = pinned(
                ctx, kind="iceberg", key=key_of(self.table), owner=repr(self), choose=self._start
            )
            return [Split(split_id="incremental", info=after)]
        snapshot = pinned(
            ctx, kind="iceberg", key=key_of(self.table), owner=repr(self), choose=self._snapshot
        )
        sid = snapshot["snapshot_id"]
        if sid is None:  # an empty table: nothing to read
            return []
        table = self._table()
        tasks = self._snapshot_tasks(table, sid)
        n = self.files_per_split
        splits = [
            Split(
                split_id=f"snapshot-{sid}-{i:05d}",
                info={"snapshot_id": sid, "files": [t.file.file_path for t in tasks[s : s + n]]},
            )
            for i, s in enumerate(range(0, len(tasks), n))
        ]
        self._log().info("source.discovered", job_id=ctx.job_id, snapshot_id=sid, files=len(tasks))
        return splits

    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> SplitReader:
        info = split.info
        if not isinstance(info, dict):
            raise SourceError(f"{self!r}: split {split.split_id!r} has no description: {info!r}")
        if self.unbounded:
            return _IncrementalReader(self, info, state, split.split_id)
        sid, files = info.get("snapshot_id"), info.get("files")
        if not isinstance(sid, int) or not isinstance(files, list):
            raise SourceError(f"{self!r}: split {split.split_id!r} has no file list: {info!r}")
        table = self._table()
        by_path = {t.file.file_path: t for t in self._snapshot_tasks(table, sid)}
        missing = [f for f in files if f not in by_path]
        if missing:
            message = (
                f"{self!r}: snapshot {sid} no longer holds {missing[0]!r}: was it expired? "
                "A bounded job's snapshot must outlive the job"
            )
            raise SourceError(message)
        tasks = [by_path[f] for f in files]
        at = parse_position(repr(self), split.split_id, files, state)
        scan = self._scan_reader(table, table.scan(snapshot_id=sid, **self._selected()))
        return PartsReader(repr(self), files, lambda i, skip: skip_rows(scan([tasks[i]]), skip), at)

    # -- internals -------------------------------------------------------------------------

    def _table(self) -> Table:
        table = self._load(self._catalog_for(SourceError), SourceError)
        if table is None:
            raise SourceError(f"{self!r}: no such table {self.table!r}")
        return table

    def _selected(self) -> dict[str, Any]:
        return {"selected_fields": tuple(self.columns)} if self.columns is not None else {}

    def _snapshot(self) -> JSON:
        table = self._table()
        if self.snapshot_id is not None:
            if table.snapshot_by_id(self.snapshot_id) is None:
                raise SourceError(f"{self!r}: no snapshot {self.snapshot_id} in the table")
            return {"snapshot_id": self.snapshot_id}
        current = table.current_snapshot()
        return {"snapshot_id": None if current is None else current.snapshot_id}

    def _start(self) -> JSON:
        if self.snapshot_id is not None:
            return {"after": self.snapshot_id}
        if self.start == "earliest":
            return {"after": None}
        current = self._table().current_snapshot()
        return {"after": None if current is None else current.snapshot_id}

    def _snapshot_tasks(self, table: Table, sid: int) -> list[FileScanTask]:
        tasks = table.scan(snapshot_id=sid, **self._selected()).plan_files()
        return sorted(tasks, key=lambda t: t.file.file_path)

    @staticmethod
    def _scan_reader(table: Table, scan: Any) -> Any:
        """``read(tasks)``: the batches of some of ``scan``'s tasks (deletes applied)."""
        from pyiceberg.io.pyarrow import ArrowScan

        arrow = ArrowScan(
            table.metadata, table.io, scan.projection(), scan.row_filter, scan.case_sensitive
        )
        return arrow.to_record_batches


class _IncrementalReader(SplitReader):
    """Follows the main branch snapshot by snapshot; see the module docs for its state."""

    def __init__(self, source: IcebergSource, start: Any, state: JSON, split_id: str) -> None:
        self._source = source
        self._owner = repr(source)
        after = start.get("after") if isinstance(start, dict) else None
        self._done: int | None = after  # the last snapshot read completely
        self._resume: tuple[int, Position] | None = None  # (next, where in it)
        if state is not None:
            ok = isinstance(state, dict) and all(
                isinstance(state.get(k), int | type(None)) for k in ("snapshot_id", "next")
            )
            if not ok:
                message = (
                    f"{self._owner}: split {split_id!r} cannot resume from {state!r}; expected "
                    '{"snapshot_id": int | None, "next": int | None, "part": …, "row": …}'
                )
                raise SourceError(message)
            self._done = state["snapshot_id"]
            if state.get("next") is not None:
                at = Position(state.get("part", 0), state.get("row", 0))
                self._resume = (state["next"], at)
        self._split_id = split_id
        self._table: Table | None = None
        self._polled = 0.0
        self._next: int | None = None
        self._reader: PartsReader | None = None

    @property
    def finished(self) -> bool:
        return False

    def snapshot(self) -> JSON:
        state: dict[str, Any] = {"snapshot_id": self._done, "next": None, "part": 0, "row": 0}
        if self._reader is not None and self._next is not None:
            state.update(self._reader.snapshot(), next=self._next)
        return state

    def read(self, max_rows: int) -> pa.Table | None:
        while True:
            if self._reader is None and not self._open_next():
                return None
            assert self._reader is not None
            table = self._reader.read(max_rows)
            if table is not None:
                return table
            self._log().debug("source.snapshot_read", snapshot_id=self._next)
            self._reader.close()
            self._done, self._next, self._reader = self._next, None, None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def _log(self) -> Any:
        return get_logger("tideflow.streaming.iceberg", table=self._source.table)

    def _open_next(self) -> bool:
        """Start reading the snapshot after ``_done``; False when there is none yet."""
        now = time.monotonic()
        if self._table is None:
            self._table = self._source._table()
            self._polled = now
        following = self._following()
        if following is None and now - self._polled >= self._source.poll_interval_s:
            self._table = self._table.refresh()
            self._polled = now
            following = self._following()
        if following is None:
            return False
        table = self._table
        scan = table.incremental_append_scan(
            from_snapshot_id_exclusive=self._done,
            to_snapshot_id_inclusive=following,
            **self._source._selected(),
        )
        tasks = sorted(scan.plan_files(), key=lambda t: t.file.file_path)
        files = [t.file.file_path for t in tasks]
        at = Position()
        if self._resume is not None:
            expected, at = self._resume
            self._resume = None
            if expected != following:
                message = (
                    f"{self._owner}: was reading snapshot {expected} after {self._done} when "
                    f"checkpointed, but the snapshot after {self._done} is now {following}: "
                    "the table's history was rewritten"
                )
                raise SourceError(message)
            state = {"part": at.part, "row": at.row}
            at = parse_position(self._owner, self._split_id, files, state)
        read = IcebergSource._scan_reader(table, scan)
        self._next = following
        self._reader = PartsReader(
            self._owner, files, lambda i, skip: skip_rows(read([tasks[i]]), skip), at
        )
        return True

    def _following(self) -> int | None:
        """The snapshot after ``_done`` on the main branch, or None."""
        from pyiceberg.table.snapshots import ancestors_of

        assert self._table is not None
        current = self._table.current_snapshot()
        if current is None:
            return None
        lineage = [s.snapshot_id for s in ancestors_of(current, self._table.metadata)]
        if self._done is None:
            return lineage[-1]
        if self._done not in lineage:
            message = (
                f"{self._owner}: snapshot {self._done}, where the job stopped reading, is no "
                "longer in the table's main branch (expired or rolled back); restart the job "
                "with a new id and snapshot_id= to choose where to go on"
            )
            raise SourceError(message)
        index = lineage.index(self._done)
        return lineage[index - 1] if index > 0 else None


# -- sink -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, repr=False)
class IcebergSink(IcebergTable, RemovesStaged):
    """Appends each epoch as one snapshot, exactly once (see the module docs).

    ``IcebergSink("db.events", catalog={...}, schema=None, table_properties={})``.
    """

    schema: pa.Schema | None = None
    """The table's schema if the sink creates it (None: the first rows' schema)."""
    table_properties: Mapping[str, str] = field(default_factory=dict)
    """Properties of a table the sink creates."""

    name = "iceberg"
    parallel_writes: ClassVar[bool] = True  # data files per writer; one append per epoch

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schema is not None and not isinstance(self.schema, pa.Schema):
            raise ConfigError(f"IcebergSink.schema must be a pyarrow.Schema; got {self.schema!r}")

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        table = self._load(self._catalog_for(SinkError), SinkError)
        reference = table.schema().as_arrow() if table is not None else self.schema
        return _Writer(self, self._staging(ctx), ctx.run, index, reference)

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        staging = self._staging(ctx)
        catalog = self._catalog_for(SinkError)
        table = self._load(catalog, SinkError)
        for e, states in staging.backlog(ctx, epoch, precommits, self._log()):
            table = self._publish(ctx, e, states, catalog=catalog, table=table, staging=staging)
        staging.remove(lambda e: e <= epoch)

    def remove_staged(self, ctx: JobContext, which: Callable[[int], bool]) -> int:
        return len(self._staging(ctx).remove(which))

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:
        if last_epoch is None:
            table = self._load(self._catalog_for(SinkError), SinkError)
            mark = _mark(table, ctx.job_id) if table is not None else None
            if mark is not None:
                message = (
                    f"{self!r}: job {ctx.job_id!r} starts without a checkpoint, but the table "
                    f"already holds its epochs up to {mark}: was the job id reused without its "
                    "checkpoints? Use a new job id (or restore the checkpoint directory)"
                )
                raise SinkError(message)
        super().recover(ctx, last_epoch)

    # -- internals -------------------------------------------------------------------------

    def _staging(self, ctx: JobContext) -> EpochStaging:
        return EpochStaging.open(ctx, kind="iceberg", key=key_of(self.table), owner=repr(self))

    def _publish(
        self,
        ctx: JobContext,
        epoch: int,
        precommits: Sequence[JSON],
        *,
        catalog: Catalog,
        table: Table | None,
        staging: EpochStaging,
    ) -> Table | None:
        """Append ``epoch``'s staged rows unless already done; returns the (new) table."""
        files = [f for state in precommits for f in _files_of(self, state, epoch)]
        if not files:
            return table
        if table is not None and _committed(table, ctx.job_id, epoch):
            self._log().info("sink.already_committed", job_id=ctx.job_id, epoch=epoch)
            return table
        paths = [f"{staging.root}/{f}" for f in files]
        data = self._read_staged(staging, ctx, epoch, paths)
        if table is None:
            table = self._create(catalog, self.schema or data.schema)
        properties = {JOB_PROPERTY: ctx.job_id, EPOCH_PROPERTY: str(epoch)}

        def append(table: Table) -> None:
            with table.transaction() as tx:
                tx.append(data, snapshot_properties=properties)
                tx.set_properties({MARK_PREFIX + ctx.job_id: str(epoch)})

        what = f"append epoch {epoch} of job {ctx.job_id!r}"
        guarded(repr(self), what, SinkError, append, table, catch=(Exception,))
        self._log().info("sink.committed", job_id=ctx.job_id, epoch=epoch, rows=data.num_rows)
        return table

    def _read_staged(
        self, staging: EpochStaging, ctx: JobContext, epoch: int, paths: list[str]
    ) -> pa.Table:
        problem = None
        try:
            return pa.concat_tables(
                [pq.read_table(p, filesystem=staging.filesystem) for p in paths],
                promote_options="permissive",
            )
        except FileNotFoundError:
            problem = "its staged files are gone and it was never appended"
        except (OSError, pa.ArrowException) as e:
            problem = describe_error(e)
        message = f"{self!r}: cannot commit epoch {epoch} of job {ctx.job_id!r}: {problem}"
        raise SinkError(message)

    def _create(self, catalog: Catalog, schema: pa.Schema) -> Table:
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

        namespace = self.table.rsplit(".", 1)[0]

        def create() -> Table:
            with contextlib.suppress(NamespaceAlreadyExistsError):
                catalog.create_namespace(namespace)
            try:
                return catalog.create_table(
                    self.table, schema=schema, properties=dict(self.table_properties)
                )
            except TableAlreadyExistsError:  # another job created it meanwhile
                return catalog.load_table(self.table)

        what = f"create the table with schema {schema}"
        table: Table = guarded(repr(self), what, SinkError, create, catch=(Exception,))
        self._log().info("sink.created_table", schema=str(schema))
        return table


def _files_of(sink: IcebergSink, state: JSON, epoch: int) -> list[str]:
    files = state.get("files") if isinstance(state, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        message = (
            f'{sink!r}: epoch {epoch}: expected a pre-commit {{"files": [...]}}, got {state!r}'
        )
        raise SinkError(message)
    prefix = f"epoch-{epoch:06d}/"
    foreign = [f for f in files if not f.startswith(prefix) or ".." in f]
    if foreign:
        raise SinkError(f"{sink!r}: pre-commit of epoch {epoch} names foreign files {foreign}")
    return files


def _mark(table: Table, job_id: str) -> int | None:
    value = table.properties.get(MARK_PREFIX + job_id)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _committed(table: Table, job_id: str, epoch: int) -> bool:
    """True when ``epoch`` of ``job_id`` was appended (by the mark or a snapshot summary)."""
    mark = _mark(table, job_id)
    if mark is not None and mark >= epoch:
        return True
    wanted = {JOB_PROPERTY: job_id, EPOCH_PROPERTY: str(epoch)}
    return any(
        all(s.summary is not None and s.summary.get(k) == v for k, v in wanted.items())
        for s in table.snapshots()
    )


class _Writer(SinkWriter):
    """Stages each epoch's rows as one Parquet file per writer, in the table's schema."""

    def __init__(
        self,
        sink: IcebergSink,
        staging: EpochStaging,
        run: int,
        index: int,
        reference: pa.Schema | None,
    ) -> None:
        self._sink = sink
        self._staging = staging
        self._name = f"r{run:03d}-w{index:03d}"
        self._reference = reference
        self._open: dict[int, tuple[pq.ParquetWriter, str]] = {}

    def write(self, epoch: int, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._reference is None:
            self._reference = table.schema
        fitted = fit(repr(self._sink), table, self._reference)
        entry = self._open.get(epoch)
        if entry is None:
            rel = f"epoch-{epoch:06d}/{self._name}-00000.parquet"
            self._staging.create_epoch_dir(epoch)
            path = f"{self._staging.root}/{rel}"
            filesystem = self._staging.filesystem
            writer = self._call(
                lambda: pq.ParquetWriter(path, fitted.schema, filesystem=filesystem)
            )
            entry = (writer, rel)
            self._open[epoch] = entry
        self._call(lambda: entry[0].write_table(fitted))

    def precommit(self, epoch: int) -> JSON:
        entry = self._open.pop(epoch, None)
        if entry is None:
            return {"files": []}
        self._call(entry[0].close)
        state = {"files": [entry[1]]}
        self._staging.write_manifest(epoch, self._name, state)
        return state

    def close(self) -> None:
        for writer, _ in self._open.values():
            writer.close()
        self._open.clear()

    def _call(self, fn: Callable[[], Any]) -> Any:
        staging_errors = (OSError, pa.ArrowException)
        return guarded(repr(self._sink), "stage rows", SinkError, fn, catch=staging_errors)
