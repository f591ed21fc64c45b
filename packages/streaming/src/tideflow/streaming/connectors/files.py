"""File sources and sinks over ``pyarrow.fs``: Parquet and JSON lines, local, S3 or HDFS.

>>> source = ParquetSource("s3://KEY:SECRET@bucket/videos/?endpoint_override=host:9000")
>>> sink = ParquetSink("/data/out")

Sources are bounded: a directory's files (recursive, sorted; names starting with ``_`` or
``.`` are skipped, so ``_SUCCESS`` and a sink's ``_staging/`` are never read) are cut into
batch groups of ``files_per_group`` files, one split each; a resume continues inside a file
right after the last batch returned. Sinks are two-phase: each epoch is staged under
``<uri>/_staging/<job_id>/`` and moved to ``<uri>/<job_id>-e<epoch>-w<writer>-<n>.<ext>`` on
commit, so a sink's output directory can be read back by the matching source and shows
only committed epochs.

A sink's output directory keeps one schema, so that it reads back as one dataset: it is
``schema=`` if given, else that of the files already there (a rerun keeps it), else that of
the first rows written. Later rows are cast to it when that is safe (a wider integer, a
missing nullable column as nulls, another column order); rows that do not fit (an int
column turned to text, a new column) stop the job with a :class:`SinkError` that names the
sink, the column and both types. For JSON lines the types compared are those a reader infers
from the text (any integer is an int64, bytes and dates are strings).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from tideflow.streaming.connectors._filesource import FileSource
from tideflow.streaming.connectors._kit import check_columns, json_default, skip_rows
from tideflow.streaming.connectors._staged import Mismatch, OneSchemaFileSink, mismatches
from tideflow.streaming.errors import ConfigError

__all__ = ["JSONLSink", "JSONLSource", "ParquetSink", "ParquetSource"]


# -- sources --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, repr=False)
class ParquetSource(FileSource):
    """Parquet files, read row group by row group (memory stays bounded by a row group).

    ``ParquetSource(uri, files_per_group=8, columns=None, batch_rows=None)``.
    """

    columns: list[str] | None = None
    """Read only these columns (None: all)."""

    name = "parquet"
    format_name = "a Parquet file"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_columns("ParquetSource", self.columns)

    def file_batches(
        self, filesystem: pafs.FileSystem, path: str, skip: int, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        with filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            meta = parquet.metadata
            first = 0
            while first < meta.num_row_groups and skip >= meta.row_group(first).num_rows:
                skip -= meta.row_group(first).num_rows
                first += 1
            if first == meta.num_row_groups:
                return
            groups = list(range(first, meta.num_row_groups))
            columns = list(self.columns) if self.columns is not None else None
            batches = parquet.iter_batches(
                batch_size=batch_size, row_groups=groups, columns=columns
            )
            yield from skip_rows(batches, skip)


@dataclass(frozen=True, kw_only=True, repr=False)
class JSONLSource(FileSource):
    """JSON lines files (one JSON object per line; ``.gz``/``.bz2``/``.zst`` decompressed by
    extension), parsed by ``pyarrow.json`` block by block.

    Without ``schema``, column types are inferred from each file's first block; a later
    value that does not fit (a column null at first, text later) fails with a
    :class:`SourceError` that suggests passing ``schema``.
    """

    schema: pa.Schema | None = None
    """The columns to read and their types (fields not in it are ignored); None: infer."""
    block_size: int = 8 << 20
    """Bytes parsed at a time (and over which types are inferred)."""

    name = "jsonl"
    format_name = "JSON lines (one JSON object per line)"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schema is not None and not isinstance(self.schema, pa.Schema):
            message = f"JSONLSource.schema must be None or a pyarrow.Schema; got {self.schema!r}"
            raise ConfigError(message)
        size = self.block_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1024:
            raise ConfigError(f"JSONLSource.block_size must be an int ≥ 1024; got {size!r}")

    def file_batches(
        self, filesystem: pafs.FileSystem, path: str, skip: int, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        parse = (
            pajson.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore")
            if self.schema is not None
            else pajson.ParseOptions()
        )
        with filesystem.open_input_stream(path) as stream:
            try:
                reader = pajson.open_json(
                    stream,
                    read_options=pajson.ReadOptions(block_size=self.block_size),
                    parse_options=parse,
                )
            except pa.ArrowInvalid as e:
                if "Empty JSON stream" in str(e):
                    return  # an empty file: no rows
                raise
            yield from skip_rows(self._batches(reader), skip)

    def _batches(self, reader: Any) -> Iterator[pa.RecordBatch]:
        """The batches of a ``pyarrow.json`` reader; a value that does not fit says how to
        fix it."""
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                hint = "" if self.schema is not None else " (pass JSONLSource(schema=...))"
                raise pa.ArrowInvalid(f"{e}{hint}") from e


# -- sinks ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, repr=False)
class ParquetSink(OneSchemaFileSink):
    """Two-phase Parquet output; one row group per written batch.

    ``ParquetSink(uri, rows_per_file=1_000_000, schema=None)``; see the module docs for
    names, commit and the output's one schema.
    """

    name = "parquet"
    extension: ClassVar[str] = ".parquet"

    def open_file(self, filesystem: pafs.FileSystem, path: str, schema: pa.Schema) -> _Parquet:
        return _Parquet(filesystem, path, schema)

    def read_schema(self, filesystem: pafs.FileSystem, path: str) -> pa.Schema:
        with filesystem.open_input_file(path) as handle:
            return pq.ParquetFile(handle).schema_arrow

    def reader_schema(self, schema: pa.Schema) -> pa.Schema:
        return _as_parquet_reads(schema)


@functools.lru_cache(maxsize=64)
def _as_parquet_reads(schema: pa.Schema) -> pa.Schema:
    """``schema`` as a Parquet file written from it reads back (date64 as date32, seconds
    as milliseconds, list items named ``element``); the same when Parquet cannot store it
    (writing the file then fails with the reason)."""
    buffer = pa.BufferOutputStream()
    try:
        pq.write_table(schema.empty_table(), buffer)
    except (pa.ArrowException, ValueError, TypeError):
        return schema
    read: pa.Schema = pq.read_schema(pa.BufferReader(buffer.getvalue()))
    return read


@dataclass(frozen=True, kw_only=True, repr=False)
class JSONLSink(OneSchemaFileSink):
    """Two-phase JSON lines output, one object per row.

    Values JSON has no type for are written as text: bytes as base64, dates and times in
    ISO 8601, decimals as strings. ``JSONLSink(uri, rows_per_file=1_000_000, schema=None)``.
    Rows are checked against the output's schema as a reader infers it from the text (an
    int32 fits an int64 column, a string does not; a column that held only nulls so far takes
    the type of its first values) and written as they are.
    """

    name = "jsonl"
    extension: ClassVar[str] = ".jsonl"

    def open_file(self, filesystem: pafs.FileSystem, path: str, schema: pa.Schema) -> _JSONLines:
        return _JSONLines(filesystem, path)

    def read_schema(self, filesystem: pafs.FileSystem, path: str) -> pa.Schema | None:
        """The schema ``pyarrow.json`` infers from the file's first lines (about 1 MiB)."""
        with filesystem.open_input_stream(path) as stream:
            chunks = [stream.read(_HEAD_BYTES)]
            while chunks[-1] and b"\n" not in chunks[-1]:  # a line longer than a chunk
                chunks.append(stream.read(_HEAD_BYTES))
        head = b"".join(chunks)
        head = head[: head.rfind(b"\n") + 1] or head
        if not head.strip():
            return None
        options = pajson.ReadOptions(block_size=len(head) + 1)
        schema: pa.Schema = pajson.read_json(pa.BufferReader(head), read_options=options).schema
        return schema

    def reader_schema(self, schema: pa.Schema) -> pa.Schema:
        fields = [pa.field(f.name, _json_type(f.type), f.nullable) for f in schema]
        return pa.schema(fields)

    def published_mismatches(self, published: pa.Schema, schema: pa.Schema) -> list[Mismatch]:
        # Types inferred from text are approximate (a column null in the first lines): the
        # files fit when their rows would fit.
        return mismatches(published, schema)

    def refine(self, schema: pa.Schema, found: pa.Schema) -> pa.Schema:
        # A column that held only nulls so far has no JSON type yet: its first values give it
        # one (null in the first lines of a file is how a sparse column reads back).
        return pa.schema(
            [
                f.with_type(found.field(f.name).type)
                if pa.types.is_null(f.type) and found.names.count(f.name) == 1
                else f
                for f in schema
            ]
        )

    def as_written(self, table: pa.Table, schema: pa.Schema, origin: str) -> pa.Table:
        return table  # a line has no schema; its values are written as they are


_HEAD_BYTES = 1 << 20


def _json_type(arrow: pa.DataType) -> pa.DataType:
    """The type a JSON reader (``pyarrow.json``) infers from values of type ``arrow`` as
    :class:`JSONLSink` writes them; also maps the types it infers onto themselves (it reads
    ISO 8601 text as timestamps)."""
    is_ = pa.types
    if is_.is_dictionary(arrow):
        return _json_type(arrow.value_type)
    if is_.is_integer(arrow):
        return pa.int64()
    if is_.is_floating(arrow) or is_.is_duration(arrow):  # durations as seconds
        return pa.float64()
    if is_.is_null(arrow) or is_.is_boolean(arrow):
        return arrow
    if is_.is_list(arrow) or is_.is_large_list(arrow) or is_.is_fixed_size_list(arrow):
        return pa.list_(_json_type(arrow.value_type))
    if is_.is_struct(arrow):
        fields = [arrow.field(i) for i in range(arrow.num_fields)]
        return pa.struct([pa.field(f.name, _json_type(f.type), f.nullable) for f in fields])
    if (
        is_.is_string(arrow)
        or is_.is_large_string(arrow)
        or is_.is_string_view(arrow)
        or is_.is_binary(arrow)  # base64
        or is_.is_large_binary(arrow)
        or is_.is_binary_view(arrow)
        or is_.is_fixed_size_binary(arrow)
        or is_.is_decimal(arrow)
        or is_.is_temporal(arrow)  # ISO 8601
    ):
        return pa.string()
    return arrow  # maps, unions: compared as they are


class _Parquet:
    def __init__(self, filesystem: pafs.FileSystem, path: str, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(path, schema, filesystem=filesystem)

    @property
    def schema(self) -> pa.Schema:
        return self._writer.schema

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


class _JSONLines:
    schema = None

    def __init__(self, filesystem: pafs.FileSystem, path: str) -> None:
        self._stream = filesystem.open_output_stream(path)

    def write(self, table: pa.Table) -> None:
        lines = [
            json.dumps(row, default=json_default, ensure_ascii=False) for row in table.to_pylist()
        ]
        self._stream.write(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        self._stream.close()
