"""URIs in text people read (logs, errors, reprs), and opening them with ``pyarrow.fs``.

A URI may carry credentials (``s3://KEY:SECRET@bucket/key``, ``…?access_key=…``);
:func:`redact` masks them so that a message can name the URI it is about, and
:func:`open_uri` never lets them into the errors it raises.

>>> redact("s3://KEY:SECRET@bucket/a.mp4?endpoint_override=h:9000&secret_key=S")
's3://***@bucket/a.mp4?endpoint_override=h:9000&secret_key=***'
"""

from __future__ import annotations

import os
import re

import pyarrow.fs as pafs

from tideflow.core.errors import ConfigError

__all__ = ["open_uri", "redact"]

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&\s]*(?:key|secret|token|password)[^=&\s]*=)[^&\s#]*")


def redact(text: str) -> str:
    """``text`` with URI credentials masked: the userinfo of every URI (``user:pass@``
    becomes ``***@``) and the value of every query parameter whose name contains ``key``,
    ``secret``, ``token`` or ``password``. Anything else is left as it is."""
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
