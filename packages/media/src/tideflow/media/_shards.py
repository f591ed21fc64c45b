"""What the per-shard operators share: which rows of a batch they work on."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["shard_spans"]


def shard_spans(table: pa.Table) -> list[tuple[str, float, float] | None]:
    """``(uri, start_s, end_s)`` of each shard row, or None for a row an earlier stage
    already failed (its ``error`` is set): operators pass those rows on untouched."""
    errors = (
        table.column("error").to_pylist()
        if "error" in table.column_names
        else [None] * table.num_rows
    )
    uris = table.column("uri").to_pylist()
    starts = table.column("start_s").to_pylist()
    ends = table.column("end_s").to_pylist()
    return [
        None if error is not None else (str(uri), float(start), float(end))
        for error, uri, start, end in zip(errors, uris, starts, ends, strict=True)
    ]
