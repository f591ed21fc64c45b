"""Writing a Lance sink's rows: each epoch's rows as uncommitted fragments, recorded in the
job directory so that a commit (or a recovery) finds them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tideflow.core.uri import redact
from tideflow.streaming.connectors._base import JSON, SinkWriter
from tideflow.streaming.connectors._tables import EpochStaging
from tideflow.streaming.connectors.lance._dataset import dataset_exists, lance_call
from tideflow.streaming.errors import SinkError

if TYPE_CHECKING:
    import lance

    from tideflow.streaming.connectors.lance._sink import LanceSink

__all__ = ["LanceWriter", "fragments_of"]


def fragments_of(sink: LanceSink, state: JSON, epoch: int) -> list[dict[str, Any]]:
    fragments = state.get("fragments") if isinstance(state, dict) else None
    if not isinstance(fragments, list) or not all(isinstance(f, dict) for f in fragments):
        message = (
            f'{sink!r}: epoch {epoch}: expected a pre-commit {{"fragments": [...]}}, got {state!r}'
        )
        raise SinkError(message)
    return fragments


class LanceWriter(SinkWriter):
    """Writes an epoch's rows as uncommitted fragments, flushed every ``rows_per_fragment``."""

    def __init__(self, sink: LanceSink, staging: EpochStaging, run: int, index: int) -> None:
        self._sink = sink
        self._owner = repr(sink)
        self._staging = staging
        self._name = f"r{run:03d}-w{index:03d}"
        self._dataset: lance.LanceDataset | None = None
        self._buffers: dict[int, list[pa.Table]] = {}
        self._fragments: dict[int, list[dict[str, Any]]] = {}

    def write(self, epoch: int, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        dataset = self._open(table.schema)
        fitted = _fit(self._owner, table, dataset.schema)
        buffer = self._buffers.setdefault(epoch, [])
        buffer.append(fitted)
        if sum(t.num_rows for t in buffer) >= self._sink.rows_per_fragment:
            self._flush(epoch)

    def precommit(self, epoch: int) -> JSON:
        self._flush(epoch)
        fragments = self._fragments.pop(epoch, [])
        state = {"fragments": fragments}
        if fragments:
            self._staging.write_manifest(epoch, self._name, state)
        return state

    def close(self) -> None:
        self._buffers.clear()

    def _open(self, schema: pa.Schema) -> lance.LanceDataset:
        if self._dataset is None:
            sink = self._sink
            if not dataset_exists(sink._uri, sink.storage_options):
                import lance

                empty = (sink.schema or schema).empty_table()
                try:  # an empty version 1: nothing becomes visible before a commit
                    lance.write_dataset(
                        empty,
                        sink._uri,
                        mode="create",
                        storage_options=dict(sink.storage_options or {}) or None,
                    )
                except (OSError, ValueError) as e:
                    if not dataset_exists(sink._uri, sink.storage_options):  # not a creation race
                        message = f"{self._owner}: cannot create the dataset: {redact(str(e))}"
                        raise SinkError(message) from None
            self._dataset = sink._dataset()
        return self._dataset

    def _flush(self, epoch: int) -> None:
        import lance

        buffer = self._buffers.pop(epoch, [])
        if not buffer:
            return
        self._staging.create_epoch_dir(epoch)  # so that recover finds epochs being written
        data = pa.concat_tables(buffer)
        written = lance_call(
            self._owner,
            "write fragments",
            SinkError,
            lance.fragment.write_fragments,
            data,
            self._dataset,
            max_rows_per_file=max(self._sink.rows_per_fragment, data.num_rows),
        )
        self._fragments.setdefault(epoch, []).extend(f.to_json() for f in written)
        # The fragment files exist now: record them at once, so that recover finds them
        # even if this writer dies before its pre-commit.
        self._staging.write_manifest(
            epoch, f"{self._name}-partial", {"fragments": self._fragments[epoch]}
        )


def _fit(owner: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the dataset's columns, in its order and types, or a clear SinkError."""
    expected = ", ".join(f"{f.name}: {f.type}" for f in schema)
    missing = [f.name for f in schema if f.name not in table.column_names]
    extra = [n for n in table.column_names if schema.get_field_index(n) < 0]
    problem = None
    if missing or extra:
        problem = f"missing columns {missing}, unknown columns {extra}"
    else:
        try:
            return table.select(schema.names).cast(schema)
        except (pa.ArrowException, ValueError) as e:
            seen = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
            problem = f"got ({seen}): {e}"
    raise SinkError(f"{owner}: rows do not fit the dataset's schema ({expected}): {problem}")
