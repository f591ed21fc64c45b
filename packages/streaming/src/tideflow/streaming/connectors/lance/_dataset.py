"""What the Lance source and sink share: opening a dataset, its URI, its storage options
(secrets never shown), and Lance's errors as ours."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tideflow.streaming.connectors._deps import require
from tideflow.streaming.connectors._kit import check_uri, guarded

if TYPE_CHECKING:
    import lance

__all__ = ["dataset_exists", "describe_options", "lance_call", "open_dataset", "uri_of"]

_SECRET_WORDS = ("secret", "key", "token", "password", "credential")


def uri_of(owner: str, uri: Any) -> str:
    text = check_uri(owner, uri)
    return text if "://" in text else os.path.abspath(text)


def describe_options(options: Mapping[str, str] | None) -> str:
    if not options:
        return ""
    shown = ", ".join(
        f"{k}={'***' if any(w in k.lower() for w in _SECRET_WORDS) else v}"
        for k, v in sorted(options.items())
    )
    return f", storage_options={{{shown}}}"


def lance_call(
    owner: str, what: str, error: type[Exception], fn: Any, *args: Any, **kw: Any
) -> Any:
    """Run a Lance call; its errors become ``error`` naming ``owner``, without secrets (Lance
    raises OSError, ValueError, RuntimeError, …)."""
    return guarded(owner, what, error, fn, *args, catch=(Exception,), **kw)


def open_dataset(uri: str, options: Mapping[str, str] | None, **kw: Any) -> lance.LanceDataset:
    require("lance")  # without pylance: the error that names the extra
    import lance

    return lance.dataset(uri, storage_options=dict(options or {}) or None, **kw)


def dataset_exists(uri: str, options: Mapping[str, str] | None) -> bool:
    try:
        open_dataset(uri, options)
    except (ValueError, OSError, FileNotFoundError):
        return False
    return True
