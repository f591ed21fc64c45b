"""Two-phase file sinks: stage per epoch under ``_staging/``, publish by moving on commit.

Layout under the sink's root (``<uri>``)::

    _staging/<job_id>/epoch-000042-r002-w003-00000.<ext>   staged: written by writer 3 in run 2
    <final dir>/<job_id>-e000042-w003-00000.<ext>          committed (the same file, moved)

A writer keeps one open file per epoch and rolls to a new one after ``rows_per_file`` rows
(or when a table's schema cannot be cast to the open file's). ``precommit`` closes the
epoch's files and returns ``{"files": [staged paths relative to the root]}``; an epoch with
no rows stages nothing. The final name is a pure function of the staged one without the
run, so a commit is idempotent by (job id, epoch). For each file:

- final present, staged gone → already done;
- both present, same size → a move that copies then deletes (S3) died in between → delete
  the staged copy; sizes that differ mean a job id reused without its checkpoints →
  :class:`SinkError`, nothing is overwritten;
- only staged → move it;
- neither → the data is lost, and :class:`SinkError` says so.

``recover`` removes staged files of epochs after the restored checkpoint. It leaves final
files of such epochs alone: one can exist only if an epoch was committed before its
checkpoint was durable, which the engine's protocol rules out.

A sink may fit each table before it is staged (:class:`TableFit`); the file sinks keep
one schema per output directory that way (``files/_one_schema.py``).
"""

from __future__ import annotations

import os
import posixpath
import re
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar, Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.core.observability import get_logger
from tideflow.core.uri import open_uri, redact
from tideflow.streaming.connectors._base import JSON, JobContext, SinkWriter
from tideflow.streaming.connectors._fs import display_path
from tideflow.streaming.connectors._kit import (
    RemovesStaged,
    StagedName,
    check_count,
    check_uri,
    guarded,
)
from tideflow.streaming.errors import SinkError

__all__ = [
    "STAGING",
    "FileWriter",
    "StagedFileSink",
    "TableFit",
    "final_name",
    "parse_final",
    "parse_staged",
]

STAGING = "_staging"
_FINAL = re.compile(r"-e(\d+)-w(\d+)-(\d+)\.[A-Za-z0-9.]+$")


class FileWriter(Protocol):
    """One staged file being written."""

    @property
    def schema(self) -> pa.Schema | None:
        """The file's fixed schema, or None when any table may follow (JSON lines)."""
        ...

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


class TableFit(Protocol):
    """What a writer does to a table before staging it (one per writer, may keep state)."""

    def fit(self, table: pa.Table) -> pa.Table:
        """``table`` as it is to be staged; raises :class:`SinkError` when it cannot be."""
        ...


class _AsIs:
    """Any table is staged as it is (a writer starts a new file when the schema changes)."""

    def fit(self, table: pa.Table) -> pa.Table:
        return table


def parse_staged(name: str) -> StagedName | None:
    """What a staged file's name (its directory aside) says, or None when it is not one."""
    parsed = StagedName.parse(posixpath.basename(name))
    return None if parsed is None or parsed.seq is None else parsed


def final_name(job_id: str, staged: str) -> str | None:
    """The committed base name for a staged file (``<job>-e<epoch>-w<writer>-<seq><ext>``)."""
    parsed = parse_staged(staged)
    if parsed is None:
        return None
    return f"{job_id}-e{parsed.epoch:06d}-w{parsed.writer:03d}-{parsed.seq:05d}{parsed.ext}"


def parse_final(name: str) -> tuple[int, int, int] | None:
    """``(epoch, writer, seq)`` of a committed file's base name, or None."""
    m = _FINAL.search(posixpath.basename(name))
    return None if m is None else (int(m[1]), int(m[2]), int(m[3]))


def _check_job_id(sink: StagedFileSink, job_id: str) -> None:
    if not job_id or "/" in job_id or job_id.startswith(("_", ".")):
        message = (
            f"{sink!r}: job_id {job_id!r} cannot name output files: it must be non-empty, "
            "without '/', and not start with '_' or '.' (readers skip such files)"
        )
        raise SinkError(message)


@dataclass(frozen=True, repr=False)
class StagedFileSink(RemovesStaged):
    """Base of the two-phase file sinks; subclasses say how a staged file is written."""

    uri: str | os.PathLike[str]
    """The output directory on any filesystem ``pyarrow.fs`` opens (local path, ``file://``,
    ``s3://KEY:SECRET@bucket/dir?endpoint_override=…``, ``hdfs://``). Credentials are never
    shown in logs, errors or repr."""
    _: KW_ONLY
    rows_per_file: int = 1_000_000
    """A writer starts a new file for an epoch once its open file holds this many rows."""

    parallel_writes: ClassVar[bool] = True  # each writer stages files of its own
    extension: ClassVar[str] = ".bin"
    final_dir: ClassVar[str] = ""
    """Where committed files go, relative to ``uri`` ('' for ``uri`` itself)."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        object.__setattr__(self, "uri", check_uri(owner, self.uri))
        check_count(owner, "rows_per_file", self.rows_per_file)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(os.fspath(self.uri))!r})"

    @abstractmethod
    def open_file(self, filesystem: pafs.FileSystem, path: str, schema: pa.Schema) -> FileWriter:
        """Start writing a staged file at ``path`` for tables of ``schema``."""

    def table_fit(self, filesystem: pafs.FileSystem, root: str) -> TableFit:
        """How a new writer fits tables before staging them; by default not at all, and the
        output may hold several schemas (one file per schema)."""
        return _AsIs()

    # -- the Sink contract -----------------------------------------------------------------

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        _check_job_id(self, ctx.job_id)
        filesystem, root = self._open()
        staging = f"{STAGING}/{ctx.job_id}"
        self._call(f"create {staging}", filesystem.create_dir, f"{root}/{staging}", recursive=True)
        fit = self.table_fit(filesystem, root)
        return _StagedWriter(self, filesystem, root, staging, ctx.run, index, fit)

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        _check_job_id(self, ctx.job_id)
        filesystem, root = self._open()
        final_root = self._final_root(root)
        moves: list[tuple[str, str]] = []
        for state in precommits:
            for rel in self._files_of(state, epoch):
                name = final_name(ctx.job_id, rel)
                if name is None or not rel.startswith(f"{STAGING}/{ctx.job_id}/"):
                    message = f"{self!r}: pre-commit of epoch {epoch} names a foreign file {rel!r}"
                    raise SinkError(message)
                moves.append((f"{root}/{rel}", f"{final_root}/{name}"))
        if not moves:
            return
        if self.final_dir:
            self._call("create the output directory", filesystem.create_dir, final_root)
        infos = self._call("list", filesystem.get_file_info, [p for m in moves for p in m])
        done = 0
        for (staged, final), s_info, f_info in zip(moves, infos[0::2], infos[1::2], strict=True):
            staged_exists = s_info.type == pafs.FileType.File
            if f_info.type == pafs.FileType.File:
                done += 1
                if staged_exists and s_info.size != f_info.size:
                    message = (
                        f"{self!r}: cannot commit epoch {epoch} of job {ctx.job_id!r}: "
                        f"{display_path(filesystem, final)} already exists with other content "
                        f"than {display_path(filesystem, staged)}; was the job id reused "
                        "without its checkpoints?"
                    )
                    raise SinkError(message)
                if staged_exists:  # a copy-then-delete move died between the two
                    self._call(f"delete {staged}", filesystem.delete_file, staged)
            elif staged_exists:
                self._call(f"publish {staged}", filesystem.move, staged, final)
            else:
                message = (
                    f"{self!r}: cannot commit epoch {epoch} of job {ctx.job_id!r}: the staged "
                    f"file {display_path(filesystem, staged)} is gone and was never published "
                    f"as {display_path(filesystem, final)}"
                )
                raise SinkError(message)
        self._log().info(
            "sink.committed", job_id=ctx.job_id, epoch=epoch, files=len(moves), already=done
        )

    # -- internals -------------------------------------------------------------------------

    def _open(self) -> tuple[pafs.FileSystem, str]:
        return open_uri(os.fspath(self.uri), owner=type(self).__name__)

    def _final_root(self, root: str) -> str:
        return f"{root}/{self.final_dir}" if self.final_dir else root

    def _log(self) -> Any:
        return get_logger("tideflow.streaming.files", sink=repr(self))

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a filesystem call; its errors become :class:`SinkError` without secrets."""
        return guarded(repr(self), what, SinkError, fn, *args, **kwargs)

    def _files_of(self, state: JSON, epoch: int) -> list[str]:
        files = state.get("files") if isinstance(state, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            message = (
                f'{self!r}: epoch {epoch}: expected a pre-commit {{"files": [...]}}, got {state!r}'
            )
            raise SinkError(message)
        for rel in files:
            parsed = parse_staged(rel)
            if parsed is not None and parsed.epoch != epoch:
                message = f"{self!r}: pre-commit of epoch {epoch} holds {rel!r} of another epoch"
                raise SinkError(message)
        return files

    def remove_staged(self, ctx: JobContext, which: Callable[[int], bool]) -> int:
        _check_job_id(self, ctx.job_id)
        filesystem, root = self._open()
        selector = pafs.FileSelector(f"{root}/{STAGING}/{ctx.job_id}", allow_not_found=True)
        removed = 0
        for info in self._call("list the staging directory", filesystem.get_file_info, selector):
            parsed = parse_staged(info.path)
            if info.type == pafs.FileType.File and parsed is not None and which(parsed.epoch):
                self._call(f"delete {info.path}", filesystem.delete_file, info.path)
                removed += 1
        return removed


@dataclass
class _Epoch:
    files: list[str] = field(default_factory=list)
    current: FileWriter | None = None
    rows: int = 0


@dataclass(eq=False)
class _StagedWriter(SinkWriter):
    sink: StagedFileSink
    filesystem: pafs.FileSystem
    root: str
    staging: str
    """The writer's staging directory, relative to ``root``."""
    run: int
    index: int
    table_fit: TableFit
    epochs: dict[int, _Epoch] = field(default_factory=dict)

    def write(self, epoch: int, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        sink = self.sink
        table = self.table_fit.fit(table)
        state = self.epochs.setdefault(epoch, _Epoch())
        if state.current is not None:
            fitted = _fit(table, state.current.schema)
            if fitted is None or state.rows >= sink.rows_per_file:
                self._close(state)
            else:
                table = fitted
        if state.current is None:
            name = StagedName(epoch, self.run, self.index, len(state.files), sink.extension)
            rel = f"{self.staging}/{name.name}"
            path = f"{self.root}/{rel}"
            state.current = sink._call(
                f"stage {path}", sink.open_file, self.filesystem, path, table.schema
            )
            state.files.append(rel)
            state.rows = 0
        sink._call("write a staged file", state.current.write, table)
        state.rows += table.num_rows

    def precommit(self, epoch: int) -> JSON:
        state = self.epochs.pop(epoch, None)
        if state is None:
            return {"files": []}
        self._close(state)
        return {"files": state.files}

    def close(self) -> None:
        for state in self.epochs.values():
            self._close(state)

    def _close(self, state: _Epoch) -> None:
        current, state.current = state.current, None
        if current is not None:
            self.sink._call("close a staged file", current.close)


def _fit(table: pa.Table, schema: pa.Schema | None) -> pa.Table | None:
    """``table`` in ``schema`` (cast if needed), or None when it cannot be."""
    if schema is None or table.schema == schema:
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowException, ValueError, TypeError):
        return None
