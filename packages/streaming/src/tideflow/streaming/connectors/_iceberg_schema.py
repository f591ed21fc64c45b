"""Fitting rows to an Iceberg table's schema: by name, widening types, with clear errors."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from tideflow.streaming.errors import SinkError

__all__ = ["fit", "nested_fit", "widens"]


# -- schemas --------------------------------------------------------------------------------


def fit(owner: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema`` (columns by name, types widened, missing optional ones null);
    a :class:`SinkError` that names every mismatch otherwise."""
    problems = []
    columns = []
    names = set(table.column_names)
    for target in schema:
        if target.name not in names:
            if not target.nullable:
                problems.append(f"required column {target.name!r} ({target.type}) is missing")
            columns.append(pa.nulls(table.num_rows, target.type))
            continue
        source = table.schema.field(target.name)
        if not widens(source.type, target.type):
            problems.append(f"column {target.name!r} is {source.type}, the table has {target.type}")
            continue
        columns.append(table.column(target.name))
    extra = [n for n in table.column_names if schema.get_field_index(n) < 0]
    if extra:
        problems.append(f"columns {extra} are not in the table")
    if not problems:
        bare = pa.schema([pa.field(f.name, f.type, f.nullable) for f in schema])
        try:
            return pa.Table.from_arrays(
                [c.cast(f.type) for c, f in zip(columns, bare, strict=True)], schema=bare
            )
        except (pa.ArrowException, ValueError) as e:
            problems.append(str(e))
    expected = ", ".join(f"{f.name}: {f.type}" for f in schema)
    message = f"{owner}: rows do not fit the table's schema ({expected}): " + "; ".join(problems)
    raise SinkError(message)


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
