"""Versioned weights in chunks: how the trainer publishes and the rollout workers load them."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["chunk_weights", "from_wire", "tensor_bytes", "to_wire"]


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


def to_wire(chunk: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """A chunk as the object store takes it fastest: CPU tensors as NumPy arrays, which Ray
    stores and maps back without copying (a pickled tensor costs several times more on
    both sides). Tensors NumPy has no type for (``bfloat16``) stay tensors."""
    import torch

    return [
        (name, t.numpy() if t.device.type == "cpu" and t.dtype != torch.bfloat16 else t)
        for name, t in chunk
    ]


def from_wire(chunk: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The chunk :func:`to_wire` made, as tensors again. They view the object store's
    read-only memory: the engines copy them into their own parameters, never write them."""
    import numpy as np
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*", category=UserWarning)
        return [
            (name, torch.from_numpy(t) if isinstance(t, np.ndarray) else t) for name, t in chunk
        ]
