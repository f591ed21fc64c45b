"""The file sources: Parquet (row group by row group) and JSON lines (block by block); the
listing into batch groups and the resumable reading are ``_groups``'s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from tideflow.streaming.connectors._kit import check_columns, skip_rows
from tideflow.streaming.connectors.files._groups import FileSource
from tideflow.streaming.errors import ConfigError

__all__ = ["JSONLSource", "ParquetSource"]


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
