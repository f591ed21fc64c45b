"""The Iceberg sink: writers stage each epoch's rows as Parquet in the job directory; the
driver appends an epoch as one snapshot, exactly once (see the package docs)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from tideflow.streaming.connectors._base import JSON, JobContext, SinkWriter
from tideflow.streaming.connectors._kit import RemovesStaged, describe_error, guarded
from tideflow.streaming.connectors._tables import EpochStaging, key_of
from tideflow.streaming.connectors.iceberg._catalog import IcebergTable
from tideflow.streaming.connectors.iceberg._schema import fit
from tideflow.streaming.errors import ConfigError, SinkError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

__all__ = ["EPOCH_PROPERTY", "JOB_PROPERTY", "MARK_PREFIX", "IcebergSink"]

JOB_PROPERTY = "tideflow.job_id"
EPOCH_PROPERTY = "tideflow.epoch"
MARK_PREFIX = "tideflow.epoch."
"""Table property ``tideflow.epoch.<job_id>``: the last epoch of that job appended."""


@dataclass(frozen=True, kw_only=True, repr=False)
class IcebergSink(IcebergTable, RemovesStaged):
    """Appends each epoch as one snapshot, exactly once (see the package docs).

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
