"""A discrete-time simulation of one elastic actor pool under a scaling policy.

Model (identical for every policy; only the scaling rule differs):

* Items of a :class:`~tideflow_tools.autoscale_trace.Trace` arrive in the operator's FIFO
  queue. Each tick, queued items are dispatched least-loaded-first to ready actors, each of
  which holds at most ``max_in_flight`` items (Ray Data's default: 2 × max_concurrency) and
  serves one at a time (max_concurrency = 1); the rest wait in the actor.
* A new actor serves nothing for ``cold_start_s`` (model load) but counts in the pool.
* Scaling down removes starting actors first, then idle ones; if that is not enough, busy
  actors stop taking work and leave once their items are done (Ray's own rule never needs
  this: it removes one actor at utilization ≤ 0.5, when idle actors always exist).
* The policy sees the pool every tick and may set a new size.

Measures: backlog-seconds = ∫ (items arrived and not yet in service) dt — the total time
items spent waiting, in the operator's queue or behind another item in an actor; it equals
the sum of all items' waits (plus the waits of items still waiting at the end).
Actor-seconds = ∫ (actors in the pool, starting and draining included) dt.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tideflow.core.autoscaler import ScalingConfig
from tideflow_tools.autoscale_policies import PoolView, RayDataRule, ScalingRule, TideflowRule
from tideflow_tools.autoscale_trace import Trace, TraceConfig, make_trace

__all__ = ["Comparison", "PoolModel", "SimResult", "compare", "simulate"]


@dataclass(frozen=True, kw_only=True)
class PoolModel:
    """The simulated pool."""

    min_size: int = 2
    """Fewest actors."""
    max_size: int = 40
    """Most actors."""
    initial_size: int = 8
    """Actors at time 0 (already warm)."""
    cold_start_s: float = 3.0
    """Seconds from creating an actor until it serves (model load)."""
    max_in_flight: int = 2
    """Items an actor may hold: one in service, the rest waiting in the actor (Ray Data's
    default for max_concurrency=1 is 2)."""
    series_every_s: float = 0.5
    """Sampling interval of the recorded time series."""


@dataclass
class _Actor:
    ready_at: float
    items: deque[list[float]] = field(default_factory=deque)  # [remaining_s, arrived_at]
    draining: bool = False


@dataclass(frozen=True, kw_only=True)
class SimResult:
    """Outcome of one policy on one trace."""

    policy: str
    """The policy's name."""
    metrics: dict[str, Any]
    """Every figure (see :func:`simulate`)."""
    events: list[dict[str, Any]]
    """Scale events: time, from_size, to_size, duration_s."""
    series: dict[str, list[float]]
    """Time series for plotting: time, size, running, backlog, queued."""


class _Pool:
    """The pool's mechanics: dispatch, service, resizing, and what it measures."""

    def __init__(self, model: PoolModel, dt: float) -> None:
        self.model, self.dt = model, dt
        self.actors = [_Actor(ready_at=0.0) for _ in range(model.initial_size)]
        self.queue: deque[list[float]] = deque()
        self.waits: list[float] = []
        self.completed = 0

    def dispatch(self, now: float) -> None:
        ready = [a for a in self.actors if a.ready_at <= now and not a.draining]
        for load in range(self.model.max_in_flight):
            for actor in ready:
                if not self.queue:
                    return
                if len(actor.items) == load:
                    actor.items.append(self.queue.popleft())
                    if load == 0:
                        self.waits.append(now - actor.items[-1][1])

    def serve(self, now: float) -> None:
        for actor in self.actors:
            if actor.ready_at > now:
                continue
            budget = self.dt
            while budget > 0 and actor.items:
                head = actor.items[0]
                if head[0] > budget:
                    head[0] -= budget
                    break
                budget -= head[0]
                actor.items.popleft()
                self.completed += 1
                if actor.items:
                    self.waits.append(now + self.dt - budget - actor.items[0][1])
        self.actors = [a for a in self.actors if not (a.draining and not a.items)]

    def waiting(self, now: float) -> int:
        """Items arrived and not in service."""
        return len(self.queue) + sum(
            max(0, len(a.items) - 1) for a in self.actors if a.ready_at <= now
        )

    def view(self, now: float) -> PoolView:
        live = [a for a in self.actors if not a.draining]
        running = [a for a in live if a.ready_at <= now]
        return PoolView(
            time=now,
            running=len(running),
            pending=len(live) - len(running),
            active=sum(1 for a in running if a.items),
            in_flight=sum(len(a.items) for a in running),
            queued=len(self.queue),
            max_concurrency=1,
        )

    def grow(self, count: int, now: float) -> list[_Actor]:
        new = [_Actor(ready_at=now + self.model.cold_start_s) for _ in range(count)]
        self.actors.extend(new)
        return new

    def shrink(self, count: int, now: float) -> None:
        """Remove starting actors, then idle ones; drain busy ones for the rest."""
        for pick in (
            lambda a: a.ready_at > now and not a.draining,
            lambda a: a.ready_at <= now and not a.items and not a.draining,
        ):
            for actor in [a for a in self.actors if pick(a)][:count]:
                self.actors.remove(actor)
                count -= 1
        busy = sorted((a for a in self.actors if not a.draining), key=lambda a: len(a.items))
        for actor in busy[:count]:
            actor.draining = True


def simulate(
    trace: Trace,
    rule: ScalingRule,
    model: PoolModel | None = None,
    *,
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Replay ``trace`` through a pool scaled by ``rule``.

    ``progress``, when given, is called with the fraction done every simulated 10 s.
    """
    model = model or PoolModel()
    dt = trace.config.tick_s
    pool = _Pool(model, dt)
    service = iter(trace.service_s.tolist())
    events: list[dict[str, Any]] = []
    open_ups: list[tuple[dict[str, Any], list[_Actor]]] = []
    series: dict[str, list[float]] = {
        k: [] for k in ("time", "size", "running", "backlog", "queued")
    }
    every = max(1, round(model.series_every_s / dt))
    backlog_s = actor_s = 0.0
    peak_backlog = 0
    for tick, n_arrivals in enumerate(trace.arrivals.tolist()):
        now = tick * dt
        pool.queue.extend([next(service), now] for _ in range(n_arrivals))
        pool.dispatch(now)
        pool.serve(now)
        waiting = pool.waiting(now)
        backlog_s += waiting * dt
        actor_s += len(pool.actors) * dt
        peak_backlog = max(peak_backlog, waiting)
        view = pool.view(now)
        for event, started in list(open_ups):
            if all(a.ready_at <= now or a not in pool.actors for a in started):
                event["duration_s"] = round(now - event["time"], 6)
                open_ups.remove((event, started))
        target = rule.step(view, min_size=model.min_size, max_size=model.max_size)
        if target is not None and target != view.size:
            event = {
                "time": round(now, 6),
                "from_size": view.size,
                "to_size": target,
                "duration_s": 0.0 if target < view.size else None,
            }
            events.append(event)
            if target > view.size:
                open_ups.append((event, pool.grow(target - view.size, now)))
            else:
                pool.shrink(view.size - target, now)
            rule.applied(view, target)
        if tick % every == 0:
            for key, value in (
                ("time", now),
                ("size", view.size),
                ("running", view.running),
                ("backlog", waiting),
                ("queued", view.queued),
            ):
                series[key].append(float(value))
        if progress is not None and tick % round(10.0 / dt) == 0:
            progress(tick / trace.ticks)
    metrics = _metrics(
        trace,
        events,
        pool.waits,
        backlog_s=backlog_s,
        actor_s=actor_s,
        peak_backlog=peak_backlog,
        completed=pool.completed,
        series=series,
    )
    return SimResult(policy=rule.name, metrics=metrics, events=events, series=series)


def _metrics(
    trace: Trace,
    events: list[dict[str, Any]],
    waits: list[float],
    *,
    backlog_s: float,
    actor_s: float,
    peak_backlog: int,
    completed: int,
    series: dict[str, list[float]],
) -> dict[str, Any]:
    ups = [e for e in events if e["to_size"] > e["from_size"]]
    directions = [e["to_size"] > e["from_size"] for e in events]
    reversals = sum(1 for a, b in itertools.pairwise(directions) if a != b)
    durations = [e["duration_s"] for e in ups if e["duration_s"] is not None]
    w = np.asarray(waits) if waits else np.zeros(1)
    return {
        "scale_events": len(events),
        "scale_ups": len(ups),
        "scale_downs": len(events) - len(ups),
        "direction_reversals": reversals,
        "actors_added": sum(e["to_size"] - e["from_size"] for e in ups),
        "backlog_seconds": round(backlog_s, 3),
        "actor_seconds": round(actor_s, 3),
        "work_seconds": round(trace.work_s, 3),
        "efficiency": round(trace.work_s / actor_s, 4) if actor_s else 0.0,
        "mean_wait_s": round(float(w.mean()), 4),
        "p95_wait_s": round(float(np.percentile(w, 95)), 4),
        "p99_wait_s": round(float(np.percentile(w, 99)), 4),
        "peak_backlog": peak_backlog,
        "mean_pool_size": round(float(np.mean(series["size"])), 3),
        "max_pool_size": int(max(series["size"])),
        "items": trace.items,
        "items_completed": completed,
        "mean_scale_up_duration_s": round(float(np.mean(durations)), 3) if durations else None,
    }


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Both policies on the same trace."""

    trace: Trace
    """The replayed trace."""
    model: PoolModel
    """The simulated pool."""
    config: ScalingConfig
    """Tideflow's policy configuration (its defaults, with the pool's min and max size)."""
    results: dict[str, SimResult]
    """Per policy name: ``ray_data`` and ``tideflow``."""


def compare(
    seed: int,
    *,
    duration_s: float = 600.0,
    model: PoolModel | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> Comparison:
    """Replay one seeded trace through Ray Data's rule and through :class:`PoolScaler`.

    ``progress(policy, fraction)`` is called as each simulation advances.
    """
    pool = model or PoolModel()
    trace = make_trace(seed, TraceConfig(duration_s=duration_s))
    config = ScalingConfig(min_size=pool.min_size, max_size=pool.max_size)
    rules: list[ScalingRule] = [RayDataRule(), TideflowRule(config)]
    results = {}
    for rule in rules:

        def report(fraction: float, name: str = rule.name) -> None:
            if progress is not None:
                progress(name, fraction)

        results[rule.name] = simulate(trace, rule, pool, progress=report)
        report(1.0)
    return Comparison(trace=trace, model=pool, config=config, results=results)
