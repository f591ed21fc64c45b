"""The two scaling policies the autoscaler benchmark compares, behind one small interface.

* :class:`RayDataRule` — Ray Data's actor-pool autoscaler as it is in Ray 2.60
  (``DefaultActorAutoscaler`` + ``_ActorPool``): utilization = tasks in flight ÷
  (max_concurrency × current size), where the size counts pending actors; scale up at
  utilization ≥ 1.75 by ``max(1, ceil(size × (util / 1.75 − 1)))``; scale down by one at
  utilization ≤ 0.5 unless actors are pending; a scale-down is ignored for 10 s after a
  scale-up; the rule is evaluated on every scheduling step, on the instantaneous reading.
* :class:`TideflowRule` — :class:`tideflow.core.autoscaler.PoolScaler`, fed one sample per
  step and driven by a fake clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from tideflow.core.autoscaler import PoolScaler, ScalingConfig, UtilizationSample
from tideflow.core.observability import ScaleEvent
from tideflow.core.testing import FakeClock

__all__ = ["PoolView", "RayDataRule", "ScalingRule", "TideflowRule", "ray_data_delta"]

RAY_UPSCALE_THRESHOLD = 1.75
RAY_DOWNSCALE_THRESHOLD = 0.5
RAY_DOWNSCALE_DEBOUNCE_S = 10.0


@dataclass(frozen=True, kw_only=True)
class PoolView:
    """What a policy sees of the simulated pool at one step."""

    time: float
    """Simulated time."""
    running: int
    """Ready actors that accept work (draining ones excluded)."""
    pending: int
    """Actors still starting (cold start)."""
    active: int
    """Running actors with at least one item in flight."""
    in_flight: int
    """Items dispatched to running actors and not finished."""
    queued: int
    """Items waiting in the operator's queue, not dispatched."""
    max_concurrency: int
    """Items one actor serves at once."""

    @property
    def size(self) -> int:
        return self.running + self.pending


class ScalingRule(Protocol):
    """A policy: given the pool, the size it wants now (or ``None`` to leave it)."""

    name: str

    def step(self, view: PoolView, *, min_size: int, max_size: int) -> int | None: ...

    def applied(self, view: PoolView, new_size: int) -> None:
        """Called after a change of size was actually made."""
        ...


def ray_data_delta(
    *,
    size: int,
    pending: int,
    in_flight: int,
    max_concurrency: int,
    min_size: int,
    max_size: int,
    up_threshold: float = RAY_UPSCALE_THRESHOLD,
    down_threshold: float = RAY_DOWNSCALE_THRESHOLD,
) -> tuple[int, str]:
    """Ray 2.60 ``DefaultActorAutoscaler`` decision (unlimited resource budget): delta, reason."""
    if size < min_size:
        return min_size - size, "pool below min size"
    if size > max_size:
        return max_size - size, "pool exceeding max size"
    if size == 0:
        return 1, "no running actors, scale up immediately"
    util = in_flight / (max_concurrency * size)
    if util >= up_threshold:
        if size >= max_size:
            return 0, "reached max size"
        delta = max(1, math.ceil(size * (util / up_threshold - 1)))
        return min(delta, max_size - size), f"utilization of {util} >= {up_threshold}"
    if util <= down_threshold:
        if pending > 0:
            return 0, "no downscaling while actors are pending"
        if size <= min_size:
            return 0, "reached min size"
        return -1, f"utilization of {util} <= {down_threshold}"
    return 0, f"utilization of {util} w/in limits [{down_threshold}, {up_threshold}]"


class RayDataRule:
    """Ray Data's actor-pool rule (see the module docs), with its scale-down debounce."""

    name = "ray_data"

    def __init__(self, *, debounce_s: float = RAY_DOWNSCALE_DEBOUNCE_S) -> None:
        self.debounce_s = debounce_s
        self._last_upscaled_at: float | None = None

    def step(self, view: PoolView, *, min_size: int, max_size: int) -> int | None:
        delta, _ = ray_data_delta(
            size=view.size,
            pending=view.pending,
            in_flight=view.in_flight,
            max_concurrency=view.max_concurrency,
            min_size=min_size,
            max_size=max_size,
        )
        if (
            delta < 0
            and self._last_upscaled_at is not None
            and (view.time <= self._last_upscaled_at + self.debounce_s)
        ):
            return None
        return view.size + delta if delta else None

    def applied(self, view: PoolView, new_size: int) -> None:
        if new_size > view.size:
            self._last_upscaled_at = view.time


class TideflowRule:
    """:class:`PoolScaler` with a fake clock that follows the simulation."""

    name = "tideflow"

    def __init__(self, config: ScalingConfig, *, pool: str = "sim") -> None:
        self.clock = FakeClock()
        self.scaler = PoolScaler(pool, config, clock=self.clock)
        self.last_event: ScaleEvent | None = None

    def step(self, view: PoolView, *, min_size: int, max_size: int) -> int | None:
        self.clock.set(view.time)
        self.scaler.observe(
            UtilizationSample(
                time=view.time,
                active=view.active,
                total=view.size,
                queued=view.queued,
                in_flight=view.in_flight,
                starting=view.pending,
            )
        )
        decision = self.scaler.decide(view.size)
        self.last_event = decision.event
        return decision.target if decision.scale else None

    def applied(self, view: PoolView, new_size: int) -> None:
        return None
