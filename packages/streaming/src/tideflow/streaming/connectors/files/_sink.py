"""The file sinks: Parquet and JSON lines, two-phase (the kit's ``_staged``), one schema per
output directory (``_one_schema``)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from tideflow.streaming.connectors._kit import json_default
from tideflow.streaming.connectors._schema_fit import Mismatch, mismatches
from tideflow.streaming.connectors.files._one_schema import OneSchemaFileSink

__all__ = ["JSONLSink", "ParquetSink"]


@dataclass(frozen=True, kw_only=True, repr=False)
class ParquetSink(OneSchemaFileSink):
    """Two-phase Parquet output; one row group per written batch.

    ``ParquetSink(uri, rows_per_file=1_000_000, schema=None)``; see the package docs for
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
