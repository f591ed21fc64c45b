"""The Iceberg source: one snapshot split by data files (bounded), or every append, snapshot
by snapshot (unbounded); see the package docs for states and guarantees."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.streaming.connectors._base import JSON, JobContext, Source, Split, SplitReader
from tideflow.streaming.connectors._kit import (
    Position,
    check_columns,
    check_count,
    parse_position,
    skip_rows,
)
from tideflow.streaming.connectors._tables import PartsReader, key_of, pinned
from tideflow.streaming.connectors.iceberg._catalog import IcebergTable
from tideflow.streaming.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from pyiceberg.table import FileScanTask, Table

__all__ = ["IcebergSource"]


@dataclass(frozen=True, kw_only=True, repr=False)
class IcebergSource(IcebergTable, Source):
    """Rows of an Iceberg table: one snapshot (bounded) or every append (``unbounded``).

    ``IcebergSource("db.events", catalog={...}, snapshot_id=None, unbounded=False,
    start="earliest", poll_interval_s=1.0, files_per_split=4, columns=None)``; see the
    package docs for splits, states and guarantees.
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
    """Follows the main branch snapshot by snapshot; see the package docs for its state."""

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
