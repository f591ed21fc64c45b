"""A seeded, bursty and jittery load trace for autoscaler benchmarks.

The arrival rate is a base load shaped by four things, multiplied together:

* a slow drift (±25 % sinusoid, period 5 min), like a day's curve compressed;
* jitter: log-normal noise with about one second of correlation (σ = 0.35 on the log rate),
  which flips the instantaneous load up and down several times a second;
* spikes: 1–3 s of 2–3× load, about every 20 s (a client flushing a batch);
* bursts: 8–30 s of 1.8–3.5× load, about every 75 s, ramping up over 1 s and down over 2 s;
* quiet periods: 15–45 s at 5–30 % of the load, about every 2 min.

Work items arrive as a Poisson process at that rate; each has a log-normal service time. The
same seed gives the same items with the same service times, so every policy replays the
identical work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Trace", "TraceConfig", "make_trace"]


@dataclass(frozen=True, kw_only=True)
class TraceConfig:
    """The shape of a generated load trace."""

    duration_s: float = 600.0
    """Simulated seconds."""
    tick_s: float = 0.05
    """Time step of the trace and of the simulation."""
    base_rate: float = 16.0
    """Mean arrivals per second outside bursts and quiet periods."""
    drift: float = 0.25
    """Amplitude of the slow sinusoidal drift (fraction of the base rate)."""
    drift_period_s: float = 300.0
    """Period of the drift."""
    jitter_sigma: float = 0.35
    """Standard deviation of the log-rate noise."""
    jitter_tau_s: float = 1.0
    """Correlation time of the noise."""
    spike_every_s: float = 20.0
    """Mean time between spikes."""
    spike_len_s: tuple[float, float] = (1.0, 3.0)
    """Range of spike lengths."""
    spike_gain: tuple[float, float] = (2.0, 3.0)
    """Range of spike load multipliers."""
    burst_every_s: float = 75.0
    """Mean time between bursts."""
    burst_len_s: tuple[float, float] = (8.0, 30.0)
    """Range of burst lengths."""
    burst_gain: tuple[float, float] = (1.8, 3.5)
    """Range of burst load multipliers."""
    quiet_every_s: float = 120.0
    """Mean time between quiet periods."""
    quiet_len_s: tuple[float, float] = (15.0, 45.0)
    """Range of quiet period lengths."""
    quiet_gain: tuple[float, float] = (0.05, 0.3)
    """Range of quiet period load multipliers."""
    service_mean_s: float = 0.5
    """Mean service time of one item on one actor."""
    service_cv: float = 0.5
    """Coefficient of variation of the service time."""


@dataclass(frozen=True, kw_only=True)
class Trace:
    """A generated trace: arrivals per tick and the service time of every item."""

    config: TraceConfig
    """How it was generated."""
    seed: int
    """The seed it was generated from."""
    rate: npt.NDArray[np.float64]
    """Arrival rate (items/s) per tick."""
    arrivals: npt.NDArray[np.int64]
    """Items arriving in each tick."""
    service_s: npt.NDArray[np.float64]
    """Service time of each item, in arrival order."""

    @property
    def ticks(self) -> int:
        return len(self.arrivals)

    @property
    def items(self) -> int:
        return int(self.arrivals.sum())

    @property
    def work_s(self) -> float:
        """Actor-seconds of pure service the trace needs."""
        return float(self.service_s.sum())


def _episodes(
    rng: np.random.Generator,
    mult: npt.NDArray[np.float64],
    *,
    tick_s: float,
    every_s: float,
    length: tuple[float, float],
    gain: tuple[float, float],
    ramp: tuple[float, float],
) -> None:
    """Multiply ``mult`` by episodes of ``gain`` (ramped in and out) at Poisson onsets."""
    n = len(mult)
    t = rng.exponential(every_s)
    while t < n * tick_s:
        dur, g = rng.uniform(*length), rng.uniform(*gain)
        start, stop = int(t / tick_s), min(n, int((t + dur) / tick_s))
        up, down = max(1, int(ramp[0] / tick_s)), max(1, int(ramp[1] / tick_s))
        span = np.arange(start, stop)
        shape = np.minimum(1.0, np.minimum((span - start + 1) / up, (stop - span) / down))
        mult[start:stop] *= 1.0 + (g - 1.0) * shape
        t += dur + rng.exponential(every_s)


def make_trace(seed: int, config: TraceConfig | None = None) -> Trace:
    """Generate the trace for ``seed`` (same seed and config → same trace)."""
    cfg = config or TraceConfig()
    rng = np.random.default_rng(seed)
    n = round(cfg.duration_s / cfg.tick_s)
    t = np.arange(n) * cfg.tick_s
    mult = 1.0 + cfg.drift * np.sin(2 * math.pi * t / cfg.drift_period_s + rng.uniform(0, 6.3))
    a = math.exp(-cfg.tick_s / cfg.jitter_tau_s)
    noise = rng.normal(size=n) * cfg.jitter_sigma * math.sqrt(1 - a * a)
    x = np.empty(n)
    x[0] = rng.normal() * cfg.jitter_sigma
    for i in range(1, n):
        x[i] = a * x[i - 1] + noise[i]
    mult = mult * np.exp(x - cfg.jitter_sigma**2 / 2)
    for every, length, gain, ramp in (
        (cfg.spike_every_s, cfg.spike_len_s, cfg.spike_gain, (0.2, 0.2)),
        (cfg.burst_every_s, cfg.burst_len_s, cfg.burst_gain, (1.0, 2.0)),
        (cfg.quiet_every_s, cfg.quiet_len_s, cfg.quiet_gain, (2.0, 2.0)),
    ):
        _episodes(rng, mult, tick_s=cfg.tick_s, every_s=every, length=length, gain=gain, ramp=ramp)
    rate = cfg.base_rate * mult
    arrivals = rng.poisson(rate * cfg.tick_s).astype(np.int64)
    sigma2 = math.log(1 + cfg.service_cv**2)
    service = rng.lognormal(
        math.log(cfg.service_mean_s) - sigma2 / 2, math.sqrt(sigma2), size=int(arrivals.sum())
    )
    return Trace(config=cfg, seed=seed, rate=rate, arrivals=arrivals, service_s=service)
