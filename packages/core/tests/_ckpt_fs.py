"""A real filesystem with a hook before every file opened for writing (test helper).

Wraps any ``pyarrow.fs`` filesystem (local, S3) and delegates every call to it, so the
checkpoint store under test talks to the real thing; ``before_write(path)`` runs before
each ``open_output_stream`` and may record, wait, block or raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs

__all__ = ["HookedHandler", "hooked"]


class HookedHandler(pafs.FileSystemHandler):
    """Delegates to ``inner``; calls ``before_write(path)`` before a file is written."""

    def __init__(self, inner: pafs.FileSystem, before_write: Callable[[str], None]) -> None:
        self.inner = inner
        self.before_write = before_write

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HookedHandler) and other.inner.equals(self.inner)

    __hash__ = None  # type: ignore[assignment]

    def get_type_name(self) -> str:
        return self.inner.type_name  # an S3 wrapper keeps S3's single-PUT manifest write

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> Any:
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> Any:
        return self.inner.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError("not used by the checkpoint store")

    def delete_file(self, path: str) -> None:
        self.inner.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.inner.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.inner.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        return self.inner.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self.inner.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        self.before_write(path)
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        self.before_write(path)
        return self.inner.open_append_stream(path, metadata=metadata)


def hooked(inner: pafs.FileSystem, before_write: Callable[[str], None]) -> pafs.FileSystem:
    """``inner`` behind a :class:`HookedHandler`."""
    return pafs.PyFileSystem(HookedHandler(inner, before_write))
