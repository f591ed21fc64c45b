"""Turning Kafka messages into Arrow rows (source) and rows into messages (sink).

Formats: ``"bytes"`` (the raw value), ``"json"`` (a JSON document; an object's fields
become columns), ``"arrow"`` (an Arrow IPC stream; its rows become rows) or a callable.
A message that does not decode is not an error of the job: the reader dead-letters it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from tideflow.streaming.connectors._kit import json_default
from tideflow.streaming.errors import ConfigError

__all__ = [
    "COORDINATES",
    "FORMATS",
    "check_format",
    "decode_batch",
    "encode_rows",
    "raw_record",
]

FORMATS = ("bytes", "json", "arrow")
COORDINATES = ("topic", "partition", "offset", "timestamp", "key")
"""Columns every source row carries; a decoded field of the same name becomes ``value.<name>``."""

_COORDINATE_TYPES = {
    "topic": pa.string(),
    "partition": pa.int32(),
    "offset": pa.int64(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "key": pa.binary(),
}


def check_format(owner: str, value_format: object) -> None:
    if not callable(value_format) and value_format not in FORMATS:
        message = (
            f"{owner}.value_format must be one of {', '.join(map(repr, FORMATS))} or a "
            f"callable; got {value_format!r}"
        )
        raise ConfigError(message)


def raw_record(message: Any) -> dict[str, Any]:
    """A dead-letter ``record``: the message's coordinates and its raw key and value."""
    value: bytes | None = message.value
    key: bytes | None = message.key
    record: dict[str, Any] = {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": None if key is None else key.decode("utf-8", "replace"),
        "value": None if value is None else value[:4096].decode("utf-8", "replace"),
        "value_base64": None if value is None else base64.b64encode(value).decode("ascii"),
    }
    return record


def _coordinates(message: Any) -> dict[str, Any]:
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": message.key,
    }


def _fields(decoded: Any) -> dict[str, Any]:
    if isinstance(decoded, dict):
        return {(f"value.{k}" if k in COORDINATES else str(k)): v for k, v in decoded.items()}
    return {"value": decoded}


def decode_batch(
    messages: Sequence[Any], value_format: str | Callable[[bytes], Any]
) -> tuple[pa.Table | None, list[tuple[Any, str]]]:
    """The rows of ``messages`` and the messages that failed, each with its error."""
    failed: list[tuple[Any, str]] = []
    if value_format == "bytes":
        columns: dict[str, pa.Array] = {
            name: pa.array([getattr(m, name) for m in messages], _COORDINATE_TYPES[name])
            for name in COORDINATES
        }
        columns["value"] = pa.array([m.value for m in messages], pa.binary())
        return (pa.table(columns) if messages else None), failed
    if value_format == "arrow":
        return _decode_arrow(messages, failed), failed
    rows: list[dict[str, Any]] = []
    kept: list[Any] = []
    for message in messages:
        try:
            if message.value is None:
                raise ValueError("the message has no value (a tombstone)")
            if value_format == "json":
                decoded = json.loads(message.value)
            else:
                assert callable(value_format)
                decoded = value_format(message.value)
        except Exception as error:
            failed.append((message, f"{type(error).__name__}: {error}"))
            continue
        rows.append({**_coordinates(message), **_fields(decoded)})
        kept.append(message)
    return _rows_to_table(rows, kept, failed), failed


def _coordinate_schema() -> list[pa.Field]:
    return [pa.field(name, _COORDINATE_TYPES[name]) for name in COORDINATES]


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as columns over the union of their fields (``None`` where a row has none)."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: [row.get(name) for row in rows] for name in names}


def _rows_to_table(
    rows: list[dict[str, Any]], messages: list[Any], failed: list[tuple[Any, str]]
) -> pa.Table | None:
    if not rows:
        return None
    try:
        table = pa.Table.from_pydict(_columns(rows))
    except (pa.ArrowException, TypeError, ValueError):
        # Values whose types differ between messages: the first message sets the types,
        # the messages that do not fit them are dead-lettered.
        names = list(_columns(rows))
        schema = pa.Table.from_pydict(_columns(rows[:1])).schema
        for name in names[len(schema) :]:
            schema = schema.append(pa.field(name, pa.null()))
        fitting: list[dict[str, Any]] = []
        for row, message in zip(rows, messages, strict=True):
            try:
                pa.Table.from_pylist([row], schema=schema)
            except (pa.ArrowException, TypeError, ValueError) as error:
                failed.append((message, f"does not fit the batch's column types: {error}"))
                continue
            fitting.append(row)
        table = pa.Table.from_pylist(fitting, schema=schema)
    return _with_coordinate_types(table)


def _with_coordinate_types(table: pa.Table) -> pa.Table:
    for field in _coordinate_schema():
        index = table.schema.get_field_index(field.name)
        table = table.set_column(index, field, table.column(index).cast(field.type))
    return table


def _decode_arrow(messages: Sequence[Any], failed: list[tuple[Any, str]]) -> pa.Table | None:
    tables = []
    for message in messages:
        try:
            if message.value is None:
                raise ValueError("the message has no value (a tombstone)")
            with pa.ipc.open_stream(message.value) as reader:
                table = reader.read_all()
        except Exception as error:
            failed.append((message, f"{type(error).__name__}: not an Arrow IPC stream: {error}"))
            continue
        names = [f"value.{n}" if n in COORDINATES else n for n in table.column_names]
        table = table.rename_columns(names)
        coords = _coordinates(message)
        for index, field in enumerate(_coordinate_schema()):
            column = pa.array([coords[field.name]] * table.num_rows, field.type)
            table = table.add_column(index, field, column)
        tables.append(table)
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


# -- the sink side ---------------------------------------------------------------------------


def _as_bytes(value: Any, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if what == "key":
        return str(value).encode("utf-8")
    raise TypeError(f"value_format='bytes' needs a binary or string {what}; got {type(value)}")


def encode_rows(
    table: pa.Table,
    *,
    value_format: str | Callable[[dict[str, Any]], bytes],
    value_column: str | None,
    key_column: str | None,
    partition_column: str | None,
) -> tuple[list[bytes | None], list[bytes | None], list[int | None]]:
    """Keys, values and partitions of the messages for ``table``'s rows."""
    n = table.num_rows
    names = table.column_names
    keys: list[bytes | None] = [None] * n
    partitions: list[int | None] = [None] * n
    if key_column is not None and key_column in names:
        keys = [_as_bytes(k, "key") for k in table.column(key_column).to_pylist()]
    if partition_column is not None:
        if partition_column not in names:
            raise KeyError(f"partition_column {partition_column!r} is not a column: {names}")
        partitions = [None if p is None else int(p) for p in table.column(partition_column)]
    meta = {c for c in (key_column, partition_column) if c is not None}
    if value_column is not None:
        if value_column not in names:
            raise KeyError(f"value_column {value_column!r} is not a column: {names}")
        body = table.select([value_column])
    else:
        body = table.select([c for c in names if c not in meta])
    if value_format == "bytes":
        column = value_column or "value"
        if column not in names:
            raise KeyError(f"value_format='bytes' writes the column {column!r}; got {names}")
        values = [_as_bytes(v, "value") for v in table.column(column).to_pylist()]
    elif value_format == "arrow":
        values = []
        for i in range(n):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, body.schema) as writer:
                writer.write_table(body.slice(i, 1))
            values.append(sink.getvalue().to_pybytes())
    elif value_format == "json":
        rows = body.to_pylist()
        if value_column is not None:
            values = [
                json.dumps(r[value_column], default=json_default).encode("utf-8") for r in rows
            ]
        else:
            values = [json.dumps(r, default=json_default).encode("utf-8") for r in rows]
    else:
        assert callable(value_format)
        values = [value_format(r) for r in table.to_pylist()]
    return keys, values, partitions
