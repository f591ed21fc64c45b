"""Opening ``pyarrow.fs`` URIs, listing input files, and keeping credentials out of text."""

from __future__ import annotations

import os
import posixpath
import re

import pyarrow.fs as pafs

from tideflow.streaming.errors import ConfigError

__all__ = ["display_path", "is_hidden", "list_files", "open_uri", "redact"]

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&\s]*(?:key|secret|token|password)[^=&\s]*=)[^&\s#]*")


def redact(text: str) -> str:
    """``text`` with URI credentials (``user:pass@``, secret query parameters) masked."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


def open_uri(uri: str, *, owner: str = "connector") -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it for a URI or a (possibly relative) local path.

    The path has no trailing slash (except a bare ``/``). Raises :class:`ConfigError` naming
    ``owner`` when pyarrow cannot open the URI; the message never carries credentials.
    """
    text = uri if "://" in uri else os.path.abspath(uri)
    problem = None
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
    except (ValueError, OSError, TypeError) as e:
        problem = redact(str(e))
    else:
        return filesystem, path.rstrip("/") or "/"
    # Raised outside `except`: pyarrow's error repeats the raw URI, credentials included,
    # and must not ride along as __context__.
    raise ConfigError(f"{owner}: cannot open {redact(uri)!r}: {problem}")


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
