"""Test helpers that are part of the public API: a fake clock for policies and coordinators."""

from __future__ import annotations

from tideflow.core.errors import ConfigError

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that only moves when told to. Implements :class:`tideflow.core.Clock`.

    >>> clock = FakeClock()
    >>> clock.advance(1.5)
    1.5
    >>> clock.now()
    1.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (≥ 0) and return the new time."""
        if seconds < 0:
            raise ConfigError(f"FakeClock.advance: seconds must be >= 0, got {seconds!r}")
        self._now += seconds
        return self._now

    def set(self, now: float) -> None:
        """Jump to ``now``, which must not be earlier than the current time."""
        if now < self._now:
            raise ConfigError(f"FakeClock.set: time cannot go back from {self._now} to {now}")
        self._now = float(now)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now})"
