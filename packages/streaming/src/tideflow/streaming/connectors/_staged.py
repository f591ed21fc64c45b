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
from tideflow.streaming.connectors._base import JSON, JobContext, Sink, SinkWriter
from tideflow.streaming.connectors._fs import display_path, open_uri, redact
from tideflow.streaming.errors import ConfigError, SinkError

__all__ = ["FileWriter", "StagedFileSink", "final_name", "parse_staged"]

STAGING = "_staging"
_STAGED = re.compile(r"^epoch-(\d+)-r(\d+)-w(\d+)-(\d+)(\.[A-Za-z0-9.]+)$")
_FINAL = re.compile(r"-e(\d+)-w(\d+)-(\d+)\.[A-Za-z0-9.]+$")


class FileWriter(Protocol):
    """One staged file being written."""

    @property
    def schema(self) -> pa.Schema | None:
        """The file's fixed schema, or None when any table may follow (JSON lines)."""
        ...

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


def parse_staged(name: str) -> tuple[int, int, int, int, str] | None:
    """``(epoch, run, writer, seq, extension)`` of a staged file's base name, or None."""
    m = _STAGED.match(posixpath.basename(name))
    if m is None:
        return None
    return int(m[1]), int(m[2]), int(m[3]), int(m[4]), m[5]


def final_name(job_id: str, staged: str) -> str | None:
    """The committed base name for a staged file (``<job>-e<epoch>-w<writer>-<seq><ext>``)."""
    parsed = parse_staged(staged)
    if parsed is None:
        return None
    epoch, _, writer, seq, ext = parsed
    return f"{job_id}-e{epoch:06d}-w{writer:03d}-{seq:05d}{ext}"


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
class StagedFileSink(Sink):
    """Base of the two-phase file sinks; subclasses say how a staged file is written."""

    uri: str | os.PathLike[str]
    """The output directory on any filesystem ``pyarrow.fs`` opens (local path, ``file://``,
    ``s3://KEY:SECRET@bucket/dir?endpoint_override=…``, ``hdfs://``). Credentials are never
    shown in logs, errors or repr."""
    _: KW_ONLY
    rows_per_file: int = 1_000_000
    """A writer starts a new file for an epoch once its open file holds this many rows."""

    extension: ClassVar[str] = ".bin"
    final_dir: ClassVar[str] = ""
    """Where committed files go, relative to ``uri`` ('' for ``uri`` itself)."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        uri = os.fspath(self.uri) if isinstance(self.uri, os.PathLike) else self.uri
        if not isinstance(uri, str) or not uri:
            raise ConfigError(f"{owner}.uri must be a non-empty string or path; got {self.uri!r}")
        object.__setattr__(self, "uri", uri)
        n = self.rows_per_file
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{owner}.rows_per_file must be an int ≥ 1; got {n!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(os.fspath(self.uri))!r})"

    @abstractmethod
    def open_file(self, filesystem: pafs.FileSystem, path: str, schema: pa.Schema) -> FileWriter:
        """Start writing a staged file at ``path`` for tables of ``schema``."""

    # -- the Sink contract -----------------------------------------------------------------

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        _check_job_id(self, ctx.job_id)
        filesystem, root = self._open()
        staging = f"{STAGING}/{ctx.job_id}"
        self._call(f"create {staging}", filesystem.create_dir, f"{root}/{staging}", recursive=True)
        return _StagedWriter(
            sink=self, filesystem=filesystem, root=root, staging=staging, run=ctx.run, index=index
        )

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        _check_job_id(self, ctx.job_id)
        filesystem, root = self._open()
        final_root = f"{root}/{self.final_dir}" if self.final_dir else root
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

    def abort(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        removed = self._remove_staged(ctx, lambda e: e == epoch)
        self._log().info("sink.aborted", job_id=ctx.job_id, epoch=epoch, removed=removed)

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:
        removed = self._remove_staged(ctx, lambda e: last_epoch is None or e > last_epoch)
        self._log().info(
            "sink.recovered", job_id=ctx.job_id, last_epoch=last_epoch, removed=removed
        )

    # -- internals -------------------------------------------------------------------------

    def _open(self) -> tuple[pafs.FileSystem, str]:
        return open_uri(os.fspath(self.uri), owner=type(self).__name__)

    def _log(self) -> Any:
        return get_logger("tideflow.streaming.files", sink=repr(self))

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a filesystem call; its errors become :class:`SinkError` without secrets."""
        problem = None
        try:
            return fn(*args, **kwargs)
        except (OSError, ValueError, pa.ArrowException) as e:
            problem = f"{type(e).__name__}: {redact(str(e))}"
        raise SinkError(f"{self!r}: cannot {redact(what)}: {problem}")

    def _files_of(self, state: JSON, epoch: int) -> list[str]:
        files = state.get("files") if isinstance(state, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            message = (
                f'{self!r}: epoch {epoch}: expected a pre-commit {{"files": [...]}}, got {state!r}'
            )
            raise SinkError(message)
        for rel in files:
            parsed = parse_staged(rel)
            if parsed is not None and parsed[0] != epoch:
                message = f"{self!r}: pre-commit of epoch {epoch} holds {rel!r} of another epoch"
                raise SinkError(message)
        return files

    def _remove_staged(self, ctx: JobContext, which: Callable[[int], bool]) -> int:
        _check_job_id(self, ctx.job_id)
        filesystem, root = self._open()
        selector = pafs.FileSelector(f"{root}/{STAGING}/{ctx.job_id}", allow_not_found=True)
        removed = 0
        for info in self._call("list the staging directory", filesystem.get_file_info, selector):
            parsed = parse_staged(info.path)
            if info.type == pafs.FileType.File and parsed is not None and which(parsed[0]):
                self._call(f"delete {info.path}", filesystem.delete_file, info.path)
                removed += 1
        return removed


@dataclass
class _Epoch:
    files: list[str] = field(default_factory=list)
    current: FileWriter | None = None
    rows: int = 0


class _StagedWriter(SinkWriter):
    def __init__(
        self,
        *,
        sink: StagedFileSink,
        filesystem: pafs.FileSystem,
        root: str,
        staging: str,
        run: int,
        index: int,
    ) -> None:
        self._sink = sink
        self._fs = filesystem
        self._root = root
        self._staging = staging
        self._run = run
        self._index = index
        self._epochs: dict[int, _Epoch] = {}

    def write(self, epoch: int, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        state = self._epochs.setdefault(epoch, _Epoch())
        if state.current is not None:
            fitted = _fit(table, state.current.schema)
            if fitted is None or state.rows >= self._sink.rows_per_file:
                self._close(state)
            else:
                table = fitted
        if state.current is None:
            seq = len(state.files)
            rel = f"{self._staging}/epoch-{epoch:06d}-r{self._run:03d}-w{self._index:03d}-{seq:05d}"
            rel += self._sink.extension
            path = f"{self._root}/{rel}"
            state.current = self._sink._call(
                f"stage {path}", self._sink.open_file, self._fs, path, table.schema
            )
            state.files.append(rel)
            state.rows = 0
        self._sink._call("write a staged file", state.current.write, table)
        state.rows += table.num_rows

    def precommit(self, epoch: int) -> JSON:
        state = self._epochs.pop(epoch, None)
        if state is None:
            return {"files": []}
        self._close(state)
        return {"files": state.files}

    def close(self) -> None:
        for state in self._epochs.values():
            self._close(state)

    def _close(self, state: _Epoch) -> None:
        current, state.current = state.current, None
        if current is not None:
            self._sink._call("close a staged file", current.close)


def _fit(table: pa.Table, schema: pa.Schema | None) -> pa.Table | None:
    """``table`` in ``schema`` (cast if needed), or None when it cannot be."""
    if schema is None or table.schema == schema:
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowException, ValueError, TypeError):
        return None
