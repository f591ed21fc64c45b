"""The output of a file sink keeps one schema, so that it reads back as one dataset.

A :class:`OneSchemaFileSink` (Parquet, JSON lines) keeps its output directory readable as
one dataset: its schema is fixed by ``schema=``, else by the files already published there
(a rerun keeps it), else by the first rows written. A later table is cast to it when that
is safe (a wider integer or float, a missing nullable column as nulls, another column
order); a table that does not fit stops the job with a :class:`SinkError` naming the sink,
the column and both types, before any of its rows are staged. (Rows that do not fit are
not dead-lettered: a writer has no way to hand rows to the job's dead-letter output.)
"""

from __future__ import annotations

import posixpath
from abc import abstractmethod
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.streaming.connectors._fs import display_path
from tideflow.streaming.connectors._schema_fit import (
    Mismatch,
    conform,
    differences,
    does_not_fit,
    mismatches,
    schema_columns,
)
from tideflow.streaming.connectors._staged import StagedFileSink, TableFit
from tideflow.streaming.errors import ConfigError, SinkError

__all__ = ["OneSchemaFileSink"]


@dataclass(frozen=True, kw_only=True, repr=False)
class OneSchemaFileSink(StagedFileSink):
    """A staged file sink whose output directory holds one schema, so that it reads back as
    one dataset (see the module docs); subclasses say how a published file's schema is read.
    """

    schema: pa.Schema | None = None
    """The output's columns and types. None: those of the files already in the directory,
    else of the first rows written. Files already there must have these types (JSON lines:
    fit them), or the first write fails."""

    def __post_init__(self) -> None:
        super().__post_init__()
        owner, schema = type(self).__name__, self.schema
        if schema is not None and (not isinstance(schema, pa.Schema) or len(schema) == 0):
            message = (
                f"{owner}.schema must be None or a pyarrow.Schema with at least one column; "
                f"got {schema!r}"
            )
            raise ConfigError(message)
        if schema is not None:
            twice = sorted({n for n in schema.names if schema.names.count(n) > 1})
            if twice:
                raise ConfigError(f"{owner}.schema names the columns {twice} more than once")

    @abstractmethod
    def read_schema(self, filesystem: pafs.FileSystem, path: str) -> pa.Schema | None:
        """The schema of the published file at ``path`` as readers see it (None: no rows)."""

    def reader_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema readers see in a file written from tables of ``schema``."""
        return schema

    def published_mismatches(self, published: pa.Schema, schema: pa.Schema) -> list[Mismatch]:
        """How the files already published differ from the reader schema of ``schema=``: by
        default any column whose type is not the same (the files keep their exact types)."""
        return differences(published, schema)

    def refine(self, schema: pa.Schema, found: pa.Schema) -> pa.Schema:
        """The output's schema once tables of reader schema ``found`` come; by default the
        same (a file keeps the types it was written with)."""
        return schema

    def as_written(self, table: pa.Table, schema: pa.Schema, origin: str) -> pa.Table:
        """``table``, whose reader schema fits ``schema``, as it is to be written (by
        default in ``schema``, see :func:`conform`; ``origin`` says where ``schema`` is from).
        """
        return conform(repr(self), table, schema, origin=origin)

    def table_fit(self, filesystem: pafs.FileSystem, root: str) -> TableFit:
        return _OneSchema(self, filesystem, root)

    def reference(self, filesystem: pafs.FileSystem, root: str) -> tuple[pa.Schema | None, str]:
        """The output's schema as known before a writer's first table (None: that table
        fixes it), and where it comes from; looked up at the first write, after a rerun's
        recovery has published what its checkpoint holds."""
        published = self._published_schema(filesystem, root)
        if self.schema is None:
            if published is None:
                return None, ""
            schema, name = published
            return schema, f"the files already in its directory (as {name})"
        expected = self.reader_schema(self.schema)
        if published is not None:
            schema, name = published
            problems = self.published_mismatches(schema, expected)
            if problems:
                message = (
                    f"{self!r}: its schema= ({schema_columns(expected)}) differs from the files "
                    f"already in its directory (as {name}): "
                    + "; ".join(str(p) for p in problems)
                    + ". Give a schema those files fit, or write to a new directory"
                )
                raise SinkError(message)
        return expected, "its schema= argument"

    def _published_schema(
        self, filesystem: pafs.FileSystem, root: str
    ) -> tuple[pa.Schema, str] | None:
        """The reader schema of the first file published in the output directory (sorted by
        name, hidden ones skipped) that has one, and that file's name."""
        selector = pafs.FileSelector(self._final_root(root), allow_not_found=True)
        infos = self._call("list the output directory", filesystem.get_file_info, selector)
        paths = sorted(
            info.path
            for info in infos
            if info.type == pafs.FileType.File
            and info.path.endswith(self.extension)
            and not posixpath.basename(info.path).startswith(("_", "."))
        )
        for path in paths:
            name = display_path(filesystem, path)
            schema = self._call(f"read the schema of {name}", self.read_schema, filesystem, path)
            if schema is not None:
                return self.reader_schema(schema), name
        return None


class _OneSchema:
    """A writer's :class:`TableFit` for a :class:`OneSchemaFileSink`: the first table fixes
    the schema unless the sink knew it already."""

    def __init__(self, sink: OneSchemaFileSink, filesystem: pafs.FileSystem, root: str) -> None:
        self._sink = sink
        self._filesystem = filesystem
        self._root = root
        self._looked_up = False
        self._schema: pa.Schema | None = None
        self._origin = ""

    def fit(self, table: pa.Table) -> pa.Table:
        if not self._looked_up:
            self._schema, self._origin = self._sink.reference(self._filesystem, self._root)
            self._looked_up = True
        found = self._sink.reader_schema(table.schema)
        if self._schema is None:
            self._schema, self._origin = found, "the first rows it wrote"
        else:
            self._schema = self._sink.refine(self._schema, found)
        problems = mismatches(found, self._schema)
        if problems:
            raise SinkError(does_not_fit(repr(self._sink), self._schema, self._origin, problems))
        return self._sink.as_written(table, self._schema, self._origin)
