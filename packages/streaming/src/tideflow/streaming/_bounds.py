"""The size of an actor pool as users write it (no Ray: the LLM configs import it too)."""

from __future__ import annotations

from typing import Any

from tideflow.streaming.errors import ConfigError

__all__ = ["pool_bounds"]


def pool_bounds(value: Any, where: str) -> tuple[int, int]:
    """``(min, max)`` actors from a ``concurrency``-style value: an int (a fixed pool) or a
    ``(min, max)`` pair (an elastic one); ``where`` names the option in the error."""
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, tuple) and len(value) == 2:
        low, high = value
    else:
        raise ConfigError(f"{where} must be an int or (min, max); got {value!r}")
    if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
        raise ConfigError(f"{where} must satisfy 1 <= min <= max; got {value!r}")
    return low, high
