"""What a pool reports about itself: the input of every scaling policy."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UtilizationSample"]


@dataclass(frozen=True, kw_only=True)
class UtilizationSample:
    """One reading of a pool's load.

    ``utilization`` is ``active / total``: the fraction of actors that are busy. ``queued``
    is the backlog — work waiting for a free actor slot — which a policy uses to tell "busy
    and keeping up" from "busy and falling behind".
    """

    time: float
    """Clock reading (seconds) when the sample was taken."""
    active: int
    """Actors with at least one piece of work in flight."""
    total: int
    """All actors of the pool, including those still starting."""
    queued: int = 0
    """Work submitted but not yet dispatched to an actor (the backlog)."""
    in_flight: int = 0
    """Work dispatched to actors and not finished."""
    starting: int = 0
    """Actors counted in ``total`` that are still starting (cold start) and take no work."""

    def __post_init__(self) -> None:
        counts = (self.total, self.active, self.queued, self.in_flight, self.starting)
        if min(counts) < 0:
            raise ValueError(f"UtilizationSample: counts must be >= 0, got {self!r}")
        if self.active + self.starting > self.total:
            raise ValueError(
                f"UtilizationSample: active ({self.active}) + starting ({self.starting}) "
                f"cannot exceed total ({self.total})"
            )
        if self.active > self.total:
            raise ValueError(
                f"UtilizationSample: active ({self.active}) cannot exceed total ({self.total})"
            )

    @property
    def utilization(self) -> float:
        """``active / total``; an empty pool is fully utilized if work waits, else idle."""
        if self.total == 0:
            return 1.0 if self.queued > 0 else 0.0
        return self.active / self.total
