"""The check every configuration's ``__post_init__`` makes, with the message it raises."""

from __future__ import annotations

from typing import Any

from tideflow.rl.errors import ConfigError

DTYPES = ("float32", "bfloat16", "float16")
"""The torch dtypes a model's weights may be loaded in."""


def _check(condition: bool, where: str, expected: str, got: Any) -> None:
    if not condition:
        raise ConfigError(f"{where} must be {expected}; got {got!r}")


def _check_gpu_reserved(device: str, num_gpus: float, role: str) -> None:
    """A role whose torch device is a GPU must reserve one: Ray places an actor by what it
    reserves and shows it only those GPUs (a fraction such as 0.5 shares one)."""
    if str(device).split(":")[0] == "cuda" and not num_gpus > 0:
        message = (
            f"{role}.num_gpus must be > 0 with device {device!r}: Ray places an actor by the "
            "GPUs it reserves and shows it only those (0.5 shares one GPU between two roles); "
            f"got {num_gpus!r}"
        )
        raise ConfigError(message)
