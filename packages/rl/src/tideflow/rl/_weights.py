"""Versioned weights in chunks: how the trainer publishes and the rollout workers load them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["chunk_weights", "tensor_bytes"]


def tensor_bytes(tensor: Any) -> int:
    """Bytes a tensor's data takes."""
    return int(tensor.numel() * tensor.element_size())


def chunk_weights(
    named: Iterable[tuple[str, Any]], chunk_bytes: int
) -> list[list[tuple[str, Any]]]:
    """Group ``(name, tensor)`` pairs, in order, into chunks of at most ``chunk_bytes``.

    A tensor larger than ``chunk_bytes`` is a chunk of its own (tensors are not split), so
    every chunk holds whole tensors and loads on its own.
    """
    chunks: list[list[tuple[str, Any]]] = []
    current: list[tuple[str, Any]] = []
    size = 0
    for name, tensor in named:
        nbytes = tensor_bytes(tensor)
        if current and size + nbytes > chunk_bytes:
            chunks.append(current)
            current, size = [], 0
        current.append((name, tensor))
        size += nbytes
    if current:
        chunks.append(current)
    return chunks
