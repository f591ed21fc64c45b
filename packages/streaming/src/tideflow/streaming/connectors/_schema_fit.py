"""Whether a table fits an output's schema, and the safe casts that make it fit: the rules
of the file sinks' one schema per output directory (:class:`OneSchemaFileSink`), and the
widening of types that they share with the Iceberg sink (:func:`widens`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from tideflow.streaming.errors import SinkError

__all__ = [
    "Mismatch",
    "conform",
    "differences",
    "does_not_fit",
    "mismatches",
    "nested_fit",
    "schema_columns",
    "widens",
]


@dataclass(frozen=True)
class Mismatch:
    """One column of a table that does not fit an output's schema."""

    column: str
    expected: str | None
    """The output's type (None: the output has no such column)."""
    found: str | None
    """The table's type, or why its values do not convert (None: the table lacks it)."""

    def __str__(self) -> str:
        if self.expected is None:
            return f"column {self.column!r} ({self.found}) is not in the output"
        if self.found is None:
            return f"column {self.column!r} ({self.expected}) is missing"
        return f"column {self.column!r}: expected {self.expected}, found {self.found}"


def mismatches(found: pa.Schema, expected: pa.Schema) -> list[Mismatch]:
    """Why tables of schema ``found`` do not fit ``expected`` (columns matched by name), or
    ``[]``: a column ``expected`` lacks, a non-nullable one missing, a column named twice, a
    type that does not widen to the expected one. Widening is the Iceberg sink's rule
    (integers and floats to wider ones, string and binary to their large forms, timestamps to
    other units, lists by their items, structs by their fields) plus: nulls fit any type (a
    column, or the items of a list, with only nulls), and dictionary-encoded values fit the
    type of their values."""
    problems = []
    for target in expected:
        count = found.names.count(target.name)
        if count == 0 and not target.nullable:
            problems.append(Mismatch(target.name, f"{target.type} not null", None))
        elif count > 1:
            problems.append(Mismatch(target.name, str(target.type), f"{count} columns so named"))
        elif count == 1 and not _fits(seen := found.field(target.name).type, target.type):
            problems.append(Mismatch(target.name, str(target.type), str(seen)))
    problems += [Mismatch(f.name, None, str(f.type)) for f in found if f.name not in expected.names]
    return problems


def differences(published: pa.Schema, expected: pa.Schema) -> list[Mismatch]:
    """The columns whose type is not the same in two schemas (by name; order, nullability
    and metadata aside), or that only one of them has."""
    problems = []
    for target in expected:
        if target.name not in published.names:
            problems.append(Mismatch(target.name, str(target.type), None))
        elif (seen := published.field(target.name).type) != target.type:
            problems.append(Mismatch(target.name, str(target.type), str(seen)))
    problems += [
        Mismatch(f.name, None, str(f.type)) for f in published if f.name not in expected.names
    ]
    return problems


def conform(owner: str, table: pa.Table, schema: pa.Schema, *, origin: str = "") -> pa.Table:
    """``table``, which fits ``schema`` (:func:`mismatches` found nothing), in ``schema``: its
    columns in that order, a missing one as nulls, each cast safely. A :class:`SinkError`
    naming ``owner`` lists every column whose values do not convert (an overflow, a lost
    fraction of a second) or that holds nulls where ``schema`` allows none."""
    if table.schema == schema:
        return table
    problems: list[Mismatch] = []
    columns: list[pa.ChunkedArray | pa.Array] = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, target.type))
            continue
        column = table.column(target.name)
        if column.type != target.type:
            try:
                column = column.cast(target.type)
            except (pa.ArrowException, ValueError, TypeError) as e:
                problems.append(Mismatch(target.name, str(target.type), f"{column.type} ({e})"))
                continue
        if not target.nullable and column.null_count:
            nulls = f"{column.null_count} null value(s)"
            problems.append(Mismatch(target.name, f"{target.type} not null", nulls))
            continue
        columns.append(column)
    if problems:
        raise SinkError(does_not_fit(owner, schema, origin, problems))
    return pa.Table.from_arrays(columns, schema=schema)


def _fits(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether values of ``found`` convert to ``expected`` keeping their meaning."""
    t = pa.types
    if t.is_null(found):
        return True
    if t.is_dictionary(found):
        return _fits(found.value_type, expected)
    if t.is_dictionary(expected):
        return _fits(found, expected.value_type)
    nested = nested_fit(found, expected, _fits)
    return widens(found, expected) if nested is None else nested


def widens(source: pa.DataType, target: pa.DataType) -> bool:
    """True when values of ``source`` convert to ``target`` without changing meaning."""
    t = pa.types
    if source == target:
        return True
    if t.is_integer(source) and t.is_integer(target):
        return bool(target.bit_width >= source.bit_width)
    if t.is_floating(source) and t.is_floating(target):
        return bool(target.bit_width >= source.bit_width)
    if (t.is_string(source) or t.is_large_string(source)) and (
        t.is_string(target) or t.is_large_string(target)
    ):
        return True
    if (t.is_binary(source) or t.is_large_binary(source)) and (
        t.is_binary(target) or t.is_large_binary(target)
    ):
        return True
    if t.is_timestamp(source) and t.is_timestamp(target):
        return bool((source.tz is None) == (target.tz is None))
    return bool(nested_fit(source, target, widens))


def nested_fit(
    source: pa.DataType, target: pa.DataType, fits: Callable[[pa.DataType, pa.DataType], bool]
) -> bool | None:
    """Whether a list or struct ``source`` fits ``target`` when each item or field type
    ``fits`` the target's (a struct's fields by name; the target may have more); None when
    they are not both lists or both structs."""
    t = pa.types
    lists = (t.is_list, t.is_large_list, t.is_fixed_size_list)
    if any(f(source) for f in lists) and any(f(target) for f in lists):
        return fits(source.value_type, target.value_type)
    if t.is_struct(source) and t.is_struct(target):
        fields = {target.field(i).name: target.field(i).type for i in range(target.num_fields)}
        return all(
            (f := source.field(i)).name in fields and fits(f.type, fields[f.name])
            for i in range(source.num_fields)
        )
    return None


def schema_columns(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def does_not_fit(owner: str, schema: pa.Schema, origin: str, problems: list[Mismatch]) -> str:
    fixed = f", fixed by {origin}" if origin else ""
    untyped = any(p.expected == "null" for p in problems)
    hint = " (or give the sink a schema= for a column that held only nulls)" if untyped else ""
    return (
        f"{owner}: rows do not fit the output's schema ({schema_columns(schema)}){fixed}: "
        + "; ".join(str(p) for p in problems)
        + ". None of these rows were written: an output directory keeps one schema so that it "
        f"reads back as one dataset; make the rows fit in a stage before the sink{hint}"
    )
