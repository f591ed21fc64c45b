"""Arrow IPC files staged per epoch and committed by moving: the sink behind
:meth:`Pipeline.iter_batches` (which reads the output back epoch by epoch) and, as
:class:`tideflow.streaming.testing.CollectingSink`, the tests' sink."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.streaming.connectors._fs import open_uri
from tideflow.streaming.connectors._staged import StagedFileSink, parse_final

__all__ = ["CollectingSink"]


@dataclass(frozen=True, kw_only=True, repr=False)
class CollectingSink(StagedFileSink):
    """A real two-phase sink for tests: Arrow IPC files staged under ``<path>/_staging``,
    committed (idempotently, by moving) to ``<path>/committed/``; one file per write.

    ``CollectingSink(path)``; read the result with :meth:`read` and :meth:`committed_epochs`.
    """

    rows_per_file: int = 1
    """Rows after which a writer starts a new file; 1 makes one file per write."""

    name = "collecting"
    extension: ClassVar[str] = ".arrow"
    final_dir: ClassVar[str] = "committed"

    def open_file(self, filesystem: pafs.FileSystem, path: str, schema: pa.Schema) -> _ArrowFile:
        return _ArrowFile(filesystem, path, schema)

    @staticmethod
    def read(path: str | os.PathLike[str]) -> pa.Table:
        """Every committed row under ``path``, ordered by (epoch, writer, file sequence)."""
        return _read(path, None)

    @staticmethod
    def read_epoch(path: str | os.PathLike[str], epoch: int) -> pa.Table:
        """The committed rows of one epoch, ordered by (writer, file sequence)."""
        return _read(path, epoch)

    @staticmethod
    def committed_epochs(path: str | os.PathLike[str]) -> list[int]:
        """The epochs that have at least one committed file under ``path``, ascending."""
        _, files = _committed(path)
        return sorted({key[0] for key, _ in files})


def _read(path: str | os.PathLike[str], epoch: int | None) -> pa.Table:
    filesystem, files = _committed(path)
    tables = []
    for key, name in files:
        if epoch is None or key[0] == epoch:
            with filesystem.open_input_file(name) as f:
                tables.append(pa.ipc.open_file(f).read_all())
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


def _committed(
    path: str | os.PathLike[str],
) -> tuple[pafs.FileSystem, list[tuple[tuple[int, int, int], str]]]:
    filesystem, root = open_uri(os.fspath(path), owner="CollectingSink")
    selector = pafs.FileSelector(f"{root}/committed", allow_not_found=True)
    files = []
    for info in filesystem.get_file_info(selector):
        key = parse_final(info.path)
        if info.type == pafs.FileType.File and key is not None:
            files.append((key, info.path))
    return filesystem, sorted(files)


class _ArrowFile:
    def __init__(self, filesystem: pafs.FileSystem, path: str, schema: pa.Schema) -> None:
        self.schema = schema
        self._stream = filesystem.open_output_stream(path)
        self._writer = pa.ipc.new_file(self._stream, schema)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
        self._stream.close()
