"""The configuration of one pool's scaling policy."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tideflow.core.errors import ConfigError

__all__ = ["ScalingConfig"]


def _fail(field: str, allowed: str, seen: object) -> ConfigError:
    return ConfigError(f"ScalingConfig.{field} must be {allowed}; got {seen!r}")


@dataclass(frozen=True, kw_only=True)
class ScalingConfig:
    """How a :class:`~tideflow.core.autoscaler.PoolScaler` sizes one pool.

    Utilization is ``active / total`` actors (starting actors count in ``total``). A pool
    scales **up** when the window's *minimum* utilization is at least
    ``scale_up_threshold`` (and, with ``require_backlog``, work was queued throughout the
    window); it scales **down** when the window's *maximum* is at most
    ``scale_down_threshold``. It scales at most once per ``debounce_s``, up or down.

    Step sizes follow demand, so one decision does the work of several small ones:

    * up: to ``ceil((queued + in_flight) / work_per_actor)`` actors as of the latest sample,
      at least ``step`` more, at most ``max_growth`` × the current size (an empty pool counts
      as one actor here), at most ``max_size``;
    * down: to ``ceil(peak_active / target_utilization)`` actors, where ``peak_active`` is
      the window's maximum of busy actors, at least ``step`` fewer, at least ``min_size``.
    """

    min_size: int = 1
    """Fewest actors the pool keeps (0 allows an empty pool; it restarts when work waits)."""
    max_size: int = 1
    """Most actors the pool may have (≥ 1 and ≥ ``min_size``)."""
    window_s: float = 5.0
    """Seconds of samples a decision looks at (> 0); a resize starts a new window, and no
    decision is taken until samples at the new size cover it."""
    debounce_s: float = 1.0
    """After a scale (up or down) the pool does not scale again for this long (≥ 0)."""
    scale_up_threshold: float = 0.9
    """Scale up when the window's minimum utilization is at least this (0 < x ≤ 1)."""
    scale_down_threshold: float = 0.5
    """Scale down when the window's maximum utilization is at most this (0 ≤ x < up)."""
    require_backlog: bool = True
    """Scale up only if work was queued during the whole window (its minimum queued > 0)."""
    step: int = 1
    """The smallest change a scale makes, in actors (≥ 1)."""
    work_per_actor: float = 2.0
    """Pieces of work (queued + in flight) one actor is sized for when scaling up (> 0)."""
    max_growth: float = 2.0
    """A scale-up grows the pool to at most this multiple of its size, or by ``step`` (≥ 1)."""
    target_utilization: float = 0.75
    """A scale-down leaves the window's peak of busy actors at this utilization (down < x ≤ 1)."""

    def __post_init__(self) -> None:
        ints: dict[str, object] = {
            "min_size": self.min_size,
            "max_size": self.max_size,
            "step": self.step,
        }
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(name, "an int", value)
        if self.min_size < 0:
            raise _fail("min_size", ">= 0", self.min_size)
        if self.max_size < max(1, self.min_size):
            raise _fail("max_size", f">= 1 and >= min_size ({self.min_size})", self.max_size)
        if self.step < 1:
            raise _fail("step", ">= 1", self.step)
        floats: dict[str, float] = {
            "window_s": self.window_s,
            "debounce_s": self.debounce_s,
            "scale_up_threshold": self.scale_up_threshold,
            "scale_down_threshold": self.scale_down_threshold,
            "work_per_actor": self.work_per_actor,
            "max_growth": self.max_growth,
            "target_utilization": self.target_utilization,
        }
        for name, value in floats.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(name, "a number", value)
            if not math.isfinite(value):
                raise _fail(name, "finite", value)
        if self.window_s <= 0:
            raise _fail("window_s", "> 0", self.window_s)
        if self.debounce_s < 0:
            raise _fail("debounce_s", ">= 0", self.debounce_s)
        if not 0 < self.scale_up_threshold <= 1:
            raise _fail(
                "scale_up_threshold",
                "in (0, 1] (utilization is active / total)",
                self.scale_up_threshold,
            )
        if not 0 <= self.scale_down_threshold < self.scale_up_threshold:
            raise _fail(
                "scale_down_threshold",
                f">= 0 and < scale_up_threshold ({self.scale_up_threshold})",
                self.scale_down_threshold,
            )
        if self.work_per_actor <= 0:
            raise _fail("work_per_actor", "> 0", self.work_per_actor)
        if self.max_growth < 1:
            raise _fail("max_growth", ">= 1", self.max_growth)
        if not self.scale_down_threshold < self.target_utilization <= 1:
            raise _fail(
                "target_utilization",
                f"> scale_down_threshold ({self.scale_down_threshold}) and <= 1",
                self.target_utilization,
            )
