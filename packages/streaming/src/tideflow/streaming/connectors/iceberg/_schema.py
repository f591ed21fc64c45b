"""Fitting rows to an Iceberg table's schema: by name, widening types, with clear errors."""

from __future__ import annotations

import pyarrow as pa

from tideflow.streaming.connectors._schema_fit import widens
from tideflow.streaming.errors import SinkError

__all__ = ["fit"]


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
