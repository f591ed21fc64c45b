"""Serving indexed video files over HTTP: opening a video URI on its filesystem and
answering range requests (RFC 9110: one range, 206 / 416, ``HEAD``), streamed in chunks."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

__all__ = ["Unsatisfiable", "file_response", "open_video", "parse_range"]

_CHUNK_BYTES = 256 * 1024
_VIDEO_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".ogv": "video/ogg",
    ".avi": "video/x-msvideo",
    ".ts": "video/mp2t",
}


def open_video(uri: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path)`` of a video URI: a local path, ``file://`` or any
    scheme pyarrow.fs knows (``s3://``, ``gs://``, ``hdfs://``)."""
    import pyarrow.fs as pafs

    parts = urlsplit(uri)
    if parts.scheme in ("", "file") or re.match(r"^[A-Za-z]:[\\/]", uri):
        local = unquote(parts.path) if parts.scheme == "file" else uri
        return pafs.LocalFileSystem(), str(Path(local).resolve())
    return pafs.FileSystem.from_uri(uri)


def _content_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return _VIDEO_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range ``(first, last)`` of a ``Range`` header for a file of ``size``
    bytes; ``None`` for the whole file (no header, or one that RFC 9110 says to ignore:
    malformed or several ranges). Raises :class:`Unsatisfiable` when no byte can be served."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # a suffix: the last n bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise Unsatisfiable
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def _read_bytes(filesystem: Any, path: str, first: int, length: int) -> Iterator[bytes]:
    with filesystem.open_input_file(path) as handle:
        handle.seek(first)
        left = length
        while left > 0:
            chunk = handle.read(min(_CHUNK_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def file_response(filesystem: Any, path: str, size: int, request: Request) -> Response:
    """The file, or the byte range the request asks for (206), or 416 when none can be
    served; ``HEAD`` gets the headers only."""
    headers = {"Accept-Ranges": "bytes", "Content-Type": _content_type(path)}
    try:
        byte_range = parse_range(request.headers.get("range"), size)
    except Unsatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    status, first, last = 200, 0, size - 1
    if byte_range is not None:
        status, (first, last) = 206, byte_range
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    length = last - first + 1
    headers["Content-Length"] = str(length)
    if request.method == "HEAD" or length == 0:
        return Response(status_code=status, headers=headers)
    body = _read_bytes(filesystem, path, first, length)
    return StreamingResponse(body, status_code=status, headers=headers)
