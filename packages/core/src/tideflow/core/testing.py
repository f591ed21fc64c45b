"""Test helpers that are part of the public API: a fake clock, a shared local Ray."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from tideflow.core.errors import ConfigError

__all__ = ["FakeClock", "local_ray"]


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


@contextmanager
def local_ray(
    *,
    num_cpus: int = 8,
    resources: Mapping[str, float] | None = None,
    pythonpath: Sequence[str] = (),
) -> Iterator[bool]:
    """A local Ray for a test session: started here, or reused if one is already running.

    Yields True when this call started Ray (and shuts it down on exit), False when it reuses
    a running session (left running), so several packages' fixtures can share one session.
    ``num_cpus`` is logical: generous values let pools of small actors fit on a 2-core
    machine. ``pythonpath`` entries go on the workers' ``PYTHONPATH`` (for actor classes in
    test helper modules) and on this process's ``sys.path``.
    """
    import logging
    import os
    import sys
    import tempfile

    import ray

    for entry in pythonpath:
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if ray.is_initialized():
        yield False
        return
    env = {"PYTHONPATH": os.pathsep.join(pythonpath)} if pythonpath else {}
    ray.init(
        num_cpus=num_cpus,
        resources=dict(resources or {}),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        _temp_dir=tempfile.mkdtemp(prefix="tf-ray-", dir="/tmp"),
        runtime_env={"env_vars": env} if env else None,
    )
    try:
        yield True
    finally:
        ray.shutdown()
