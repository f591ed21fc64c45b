"""Listing input files over ``pyarrow.fs``; opening URIs and keeping credentials out of text
are :mod:`tideflow.core.uri`'s (re-exported here for the connectors)."""

from __future__ import annotations

import posixpath

import pyarrow.fs as pafs

from tideflow.core.uri import open_uri, redact

__all__ = ["display_path", "is_hidden", "list_files", "open_uri", "redact"]


def display_path(filesystem: pafs.FileSystem, path: str) -> str:
    """A readable name for ``path`` (``s3://bucket/key``, or the local path); no secrets."""
    kind = filesystem.type_name.split("::")[-1]
    return path if kind == "local" else f"{kind}://{path}"


def is_hidden(relative: str) -> bool:
    """True when a part of ``relative`` starts with ``_`` or ``.`` (``_SUCCESS``, ``_staging/``)."""
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def list_files(filesystem: pafs.FileSystem, path: str) -> list[str] | None:
    """The visible files at ``path``, sorted: the file itself, a directory's files (recursive),
    or the files whose path starts with ``path`` (a prefix). ``None`` when nothing matches.

    Hidden files (a part below ``path`` starting with ``_`` or ``.``) are left out.
    """
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [path]
    if info.type == pafs.FileType.Directory:
        base = path
        infos = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    else:
        base = posixpath.dirname(path)
        if not base:  # a bucket that does not exist: never match other buckets by prefix
            return None
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        infos = [i for i in filesystem.get_file_info(selector) if i.path.startswith(path)]
        if not infos:
            return None
    offset = len(base.rstrip("/")) + 1
    return sorted(
        i.path for i in infos if i.type == pafs.FileType.File and not is_hidden(i.path[offset:])
    )
