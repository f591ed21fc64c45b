"""Small public types of the scheduler: the pool's counters and the scaler it can drive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tideflow.core.autoscaler._samples import UtilizationSample
from tideflow.core.observability import ScaleEvent

__all__ = ["PoolStats", "ScaleDecisionLike", "Scaler"]


@dataclass(frozen=True, kw_only=True)
class PoolStats:
    """A snapshot of an :class:`ActorPool`'s counters (``pool.stats``)."""

    submitted: int
    """Work submitted since the pool started."""
    completed: int
    """Work that succeeded."""
    failed: int
    """Work that failed for good (after any retries), including work failed at shutdown."""
    cancelled: int
    """Work cancelled by the caller while queued."""
    retries: int
    """Attempts re-queued after an actor died (or, with ``retry_exceptions``, an error)."""
    deaths: int
    """Actors that died (killed, crashed, or failed to start)."""
    queued: int
    """Work waiting for an actor, including retries in their backoff."""
    in_flight: int
    """Work dispatched to actors and not finished."""
    starting: int
    """Actors created and not yet ready (constructing, or waiting for resources)."""
    ready: int
    """Actors taking work."""
    draining: int
    """Actors removed by a scale-down that still finish their in-flight work."""
    in_flight_per_actor: Mapping[str, int] = field(default_factory=dict)
    """Work in flight on each live actor, by actor name."""


class ScaleDecisionLike(Protocol):
    """What the pool reads from a scaler's decision (``tideflow.core.autoscaler.ScaleDecision``)."""

    @property
    def target(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def event(self) -> ScaleEvent | None: ...

    @property
    def scale(self) -> bool: ...


class Scaler(Protocol):
    """A scaling policy the pool consults on every sample (``tideflow.core.autoscaler.PoolScaler``).

    Every ``sample_interval_s`` the pool calls :meth:`observe` with its utilization, then
    :meth:`decide` with its size (starting actors included); when the decision says to
    scale, the pool resizes to ``decision.target`` and, once every new actor is ready (or
    every removed actor has drained), calls :meth:`resize_completed` with the decision's
    event.
    """

    def observe(self, sample: UtilizationSample) -> None: ...

    def decide(self, current_size: int) -> ScaleDecisionLike: ...

    def resize_completed(self, event: ScaleEvent, *, at: float | None = None) -> ScaleEvent: ...
