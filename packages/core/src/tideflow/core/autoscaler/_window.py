"""Sliding windows over utilization samples: min and max over the last ``span_s`` seconds.

A policy decides on the window's extremes rather than on the latest reading, so one noisy
sample cannot make a pool scale. Each extreme is kept in a monotonic deque, so adding a
sample and reading a min or max cost amortised O(1) however many samples the window holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tideflow.core.autoscaler._samples import UtilizationSample

__all__ = ["SampleWindow", "SlidingExtremes"]


class SlidingExtremes:
    """The minimum and maximum of one value over a sliding time window.

    Values must be added in time order. :meth:`evict` drops those older than
    ``now - span_s``; a value taken exactly at that instant stays in.
    """

    def __init__(self, span_s: float) -> None:
        self._span_s = span_s
        self._lows: deque[tuple[float, float]] = deque()
        self._highs: deque[tuple[float, float]] = deque()

    def add(self, time: float, value: float) -> None:
        while self._lows and self._lows[-1][1] >= value:
            self._lows.pop()
        self._lows.append((time, value))
        while self._highs and self._highs[-1][1] <= value:
            self._highs.pop()
        self._highs.append((time, value))

    def evict(self, now: float) -> None:
        oldest = now - self._span_s
        while self._lows and self._lows[0][0] < oldest:
            self._lows.popleft()
        while self._highs and self._highs[0][0] < oldest:
            self._highs.popleft()

    @property
    def empty(self) -> bool:
        return not self._lows

    @property
    def min(self) -> float:
        """The smallest value in the window (``nan`` when it is empty)."""
        return self._lows[0][1] if self._lows else float("nan")

    @property
    def max(self) -> float:
        """The largest value in the window (``nan`` when it is empty)."""
        return self._highs[0][1] if self._highs else float("nan")


_Reading = Callable[[UtilizationSample], float]

_READINGS: dict[str, _Reading] = {
    "utilization": lambda s: s.utilization,
    "queued": lambda s: float(s.queued),
    "active": lambda s: float(s.active),
    "demand": lambda s: float(s.queued + s.in_flight),
    "starting": lambda s: float(s.starting),
}


class SampleWindow:
    """The last ``span_s`` seconds of one pool's samples, reduced to the extremes a policy needs.

    Tracked readings: ``utilization`` (active / total), ``queued`` (backlog), ``active``
    (busy actors) and ``demand`` (queued + in flight). :meth:`coverage` says how much of the
    span the samples cover: the time since the first sample of an unbroken run, where a run
    breaks when no sample is left in the window.
    """

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._extremes = {name: SlidingExtremes(span_s) for name in _READINGS}
        self._latest: UtilizationSample | None = None
        self._run_start: float | None = None
        self._times: deque[float] = deque()

    def add(self, sample: UtilizationSample) -> None:
        """Add ``sample``; samples must come in time order (equal times are allowed)."""
        if self._latest is not None and sample.time < self._latest.time:
            raise ValueError(
                f"SampleWindow: samples must come in time order; got time {sample.time} "
                f"after {self._latest.time}"
            )
        self.evict(sample.time)
        if self._run_start is None:
            self._run_start = sample.time
        for name, read in _READINGS.items():
            self._extremes[name].add(sample.time, read(sample))
        self._times.append(sample.time)
        self._latest = sample

    def evict(self, now: float) -> None:
        """Drop samples older than ``now - span_s``; an emptied window starts a new run."""
        for extremes in self._extremes.values():
            extremes.evict(now)
        oldest = now - self.span_s
        while self._times and self._times[0] < oldest:
            self._times.popleft()
        if not self._times:
            self._run_start = None

    def clear(self) -> None:
        """Forget every sample (the latest stays readable); coverage starts again."""
        self._extremes = {name: SlidingExtremes(self.span_s) for name in _READINGS}
        self._times.clear()
        self._run_start = None

    def coverage(self, now: float) -> float:
        """Seconds of the span the current run of samples covers (0 when the window is empty)."""
        if self._run_start is None:
            return 0.0
        return min(self.span_s, max(0.0, now - self._run_start))

    def __len__(self) -> int:
        return len(self._times)

    @property
    def latest(self) -> UtilizationSample | None:
        """The newest sample ever added (it may have left the window since)."""
        return self._latest

    def min(self, reading: str) -> float:
        """The window's minimum of ``reading`` (utilization, queued, active, demand, starting)."""
        return self._extremes[reading].min

    def max(self, reading: str) -> float:
        """The window's maximum of ``reading`` (utilization, queued, active, demand, starting)."""
        return self._extremes[reading].max
