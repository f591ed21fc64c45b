"""The machinery shared by the file sources: listing into batch groups, resumable reading.

A file source lists its files (sorted, hidden ones left out) and cuts the list into batch
groups of ``files_per_group`` files; each group is a split, so a large backfill resumes by
group. A group's reader goes through its files in order and keeps its position as
``{"file": index in the group, "row": rows already returned from that file, "path": …}``;
a resume reopens that file and skips that many rows (whole Parquet row groups are skipped
from the footer, so only the row group holding the position is decoded again).
"""

from __future__ import annotations

import collections
import os
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import KW_ONLY, dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.core.observability import get_logger
from tideflow.core.uri import open_uri, redact
from tideflow.streaming.connectors._base import JSON, JobContext, Source, Split, SplitReader
from tideflow.streaming.connectors._fs import display_path, list_files
from tideflow.streaming.connectors._kit import (
    Position,
    check_count,
    check_uri,
    describe_error,
    parse_position,
)
from tideflow.streaming.errors import SourceError

__all__ = ["FileSource"]

_KEYS = ("file", "row", "path")
"""A group reader's resume state: ``{"file": index in the group, "row": rows of it returned,
"path": that file}``."""
_CHANGED = (
    "the input listing changed since the checkpoint; a file job's input must not change "
    "between runs"
)


@dataclass(frozen=True, repr=False)
class FileSource(Source):
    """Base of the bounded file sources; subclasses say how one file becomes batches."""

    uri: str | os.PathLike[str]
    """A directory (read recursively), a single file, or a path prefix, on any filesystem
    ``pyarrow.fs`` opens: a local path, ``file://``, ``s3://KEY:SECRET@bucket/dir?
    endpoint_override=host:port&scheme=http``, ``hdfs://``. Credentials are never shown."""
    _: KW_ONLY
    files_per_group: int = 8
    """Files per batch group (split). Smaller groups resume more finely and read in parallel."""
    batch_rows: int | None = None
    """Upper bound on rows per batch, below the engine's ``max_rows``; None: the engine decides."""

    format_name = "file"
    """What a file must be, for error messages (``Parquet``, ``JSON lines``)."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        object.__setattr__(self, "uri", check_uri(owner, self.uri))
        check_count(owner, "files_per_group", self.files_per_group)
        check_count(owner, "batch_rows", self.batch_rows, optional=True)

    def __repr__(self) -> str:
        uri = redact(os.fspath(self.uri))
        return f"{type(self).__name__}({uri!r}, files_per_group={self.files_per_group})"

    @property
    def bounded(self) -> bool:
        return True

    def discover(self, ctx: JobContext) -> Sequence[Split]:
        filesystem, path = open_uri(os.fspath(self.uri), owner=type(self).__name__)
        problem = None
        try:
            files = list_files(filesystem, path)
        except (OSError, ValueError) as e:
            problem = describe_error(e)
        if problem is not None:  # raised outside `except`: storage errors may echo secrets
            message = f"{self!r}: cannot list {display_path(filesystem, path)}: {problem}"
            raise SourceError(message)
        if files is None:
            message = (
                f"{self!r}: no file, directory or path prefix {display_path(filesystem, path)}"
            )
            raise SourceError(message)
        n = self.files_per_group
        splits = [
            Split(split_id=f"group-{i:06d}", info={"files": files[start : start + n]})
            for i, start in enumerate(range(0, len(files), n))
        ]
        get_logger("tideflow.streaming.files", source=repr(self)).info(
            "source.discovered", job_id=ctx.job_id, files=len(files), groups=len(splits)
        )
        return splits

    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> SplitReader:
        filesystem, _ = open_uri(os.fspath(self.uri), owner=type(self).__name__)
        info = split.info
        if not isinstance(info, dict) or not isinstance(info.get("files"), list):
            message = f"{self!r}: split {split.split_id!r} has no file list: {info!r}"
            raise SourceError(message)
        files = [str(f) for f in info["files"]]
        position = parse_position(
            repr(self), split.split_id, files, state, keys=_KEYS, changed=_CHANGED
        )
        return _GroupReader(self, filesystem, files, position)

    @abstractmethod
    def file_batches(
        self, filesystem: pafs.FileSystem, path: str, skip: int, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """The batches of one file after its first ``skip`` rows (each ≤ ``batch_size`` rows
        where the format allows). Errors of any kind are turned into :class:`SourceError`."""


class _GroupReader(SplitReader):
    """Reads a batch group's files in order; never mixes two files in one batch."""

    def __init__(
        self, source: FileSource, filesystem: pafs.FileSystem, files: list[str], at: Position
    ) -> None:
        self._source = source
        self._fs = filesystem
        self._files = files
        self._file = at.part
        self._row = at.row  # rows of the current file already returned
        self._batches: Iterator[pa.RecordBatch] | None = None
        self._pending: collections.deque[pa.RecordBatch] = collections.deque()
        self._pending_rows = 0
        self._batch_size: int | None = None
        self._done = at.part >= len(files)
        self._error: SourceError | None = None

    @property
    def finished(self) -> bool:
        return self._done

    def snapshot(self) -> JSON:
        path = self._files[self._file] if self._file < len(self._files) else None
        return {"file": self._file, "row": self._row, "path": path}

    def read(self, max_rows: int) -> pa.Table | None:
        if max_rows < 1:
            raise ValueError(f"read: max_rows must be ≥ 1; got {max_rows}")
        limit = min(max_rows, self._source.batch_rows or max_rows)
        if self._batch_size is None:
            self._batch_size = limit
        if self._error is not None:
            raise self._error
        if self._done or not self._advance_to_data():
            self._done = True
            return None
        while self._pending_rows < limit and self._pull():
            pass
        table = self._take(limit)
        self._row += table.num_rows
        # Look ahead so that `finished` is true as soon as the last batch is returned; a
        # bad next file is reported by the next read, after this batch is delivered.
        try:
            self._done = not self._advance_to_data()
        except SourceError as error:
            self._error = error
        return table

    def close(self) -> None:
        self._close_file()
        self._pending.clear()
        self._pending_rows = 0

    # -- internals -------------------------------------------------------------------------

    def _advance_to_data(self) -> bool:
        """Have pending rows, moving on to later files as files end; False after the last."""
        while not self._pending_rows:
            if self._file >= len(self._files):
                return False
            if not self._pull():
                self._close_file()
                self._file += 1
                self._row = 0
        return True

    def _pull(self) -> bool:
        """Add the current file's next batch to the pending ones; False at the file's end."""
        path = self._files[self._file]
        problem = None
        try:
            if self._batches is None:
                size = self._batch_size or 65_536
                self._batches = self._source.file_batches(self._fs, path, self._row, size)
            batch = next(self._batches)
        except StopIteration:
            return False
        except SourceError:
            raise
        except Exception as e:  # any parse or I/O error names the file and the format
            problem = e
        if problem is not None:  # raised outside `except`: storage errors may echo secrets
            self._close_file()
            message = (
                f"{self._source!r}: cannot read {display_path(self._fs, path)}: expected "
                f"{self._source.format_name}; {describe_error(problem)}"
            )
            raise SourceError(message)
        if batch.num_rows:
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
        return True

    def _take(self, limit: int) -> pa.Table:
        parts: list[pa.RecordBatch] = []
        need = limit
        while need and self._pending:
            batch = self._pending[0]
            if batch.num_rows <= need:
                parts.append(self._pending.popleft())
                need -= batch.num_rows
            else:
                parts.append(batch.slice(0, need))
                self._pending[0] = batch.slice(need)
                need = 0
        taken = limit - need
        self._pending_rows -= taken
        return pa.Table.from_batches(parts)

    def _close_file(self) -> None:
        batches, self._batches = self._batches, None
        close = getattr(batches, "close", None)
        if close is not None:
            close()
