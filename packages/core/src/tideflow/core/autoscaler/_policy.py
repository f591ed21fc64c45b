"""The scaling policy of one pool: sliding-window utilization, debounce, demand-sized steps."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from tideflow.core.autoscaler._config import ScalingConfig
from tideflow.core.autoscaler._samples import UtilizationSample
from tideflow.core.autoscaler._window import SampleWindow
from tideflow.core.clock import Clock, MonotonicClock
from tideflow.core.observability import ScaleEvent, get_logger, log_event

__all__ = ["DecisionCode", "PoolScaler", "ScaleDecision"]


class DecisionCode(enum.StrEnum):
    """What a decision amounts to, for counting; the decision's ``reason`` has the figures."""

    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    BELOW_MIN = "below_min"
    ABOVE_MAX = "above_max"
    EMPTY_WITH_WORK = "empty_with_work"
    NO_SAMPLES = "no_samples"
    WINDOW_NOT_COVERED = "window_not_covered"
    WITHIN_BAND = "within_band"
    NO_BACKLOG = "no_backlog"
    AT_MAX = "at_max"
    AT_MIN = "at_min"
    ACTORS_STARTING = "actors_starting"
    WORK_WAITING = "work_waiting"
    DEBOUNCED = "debounced"


@dataclass(frozen=True, kw_only=True)
class ScaleDecision:
    """The outcome of :meth:`PoolScaler.decide`: a new target size, or why the size stays."""

    time: float
    """Clock reading when the decision was taken."""
    pool: str
    """The pool's name."""
    current: int
    """The pool's size (including starting actors) the decision was taken for."""
    target: int
    """The size the pool should have; equal to ``current`` when it should not scale."""
    reason: str
    """Why, in words, with the figures that led to it (also why *not*, when it holds)."""
    event: ScaleEvent | None
    """The event recorded for a scale; ``None`` when the pool holds its size."""
    code: DecisionCode = DecisionCode.WITHIN_BAND
    """The kind of decision, for counting (see :attr:`PoolScaler.decision_counts`)."""

    @property
    def scale(self) -> bool:
        """Whether the pool should change its size."""
        return self.target != self.current


class PoolScaler:
    """Decides when and how far one pool scales, from samples of its utilization.

    Feed it a :class:`UtilizationSample` whenever the pool is sampled (:meth:`observe`) and
    ask :meth:`decide` with the pool's current size (starting actors included) when it may
    act. Decisions use the extremes of the last ``window_s`` seconds, not the latest reading:
    up when the window's minimum utilization reaches ``scale_up_threshold`` with work queued
    throughout, down when its maximum stays at or below ``scale_down_threshold`` with no
    work waiting and no actor still starting (a starting actor is idle by necessity).

    A resize starts a new window: samples taken at the old size describe another pool, so
    the next decision waits until samples at the new size cover ``window_s``. Starting
    actors count in ``total`` and are idle, so after a scale-up the window's minimum stays
    below the threshold until the new actors are busy: the policy cannot pile up actors
    while a cold start is under way, nor step down one actor at a time as load ebbs. The
    debounce (``debounce_s``) is the hard floor under all of this: at most one scale per
    debounce window, whatever the path (including the bounds and the empty-pool restart).

    Every scale is a :class:`ScaleEvent` in :attr:`events`, logged as ``pool.scaled``; call
    :meth:`resize_completed` when the pool reports the resize done to record its duration.
    """

    def __init__(self, pool: str, config: ScalingConfig, *, clock: Clock | None = None) -> None:
        self.pool = pool
        self.config = config
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._window = SampleWindow(config.window_s)
        self._events: list[ScaleEvent] = []
        self._last_scale_at: float | None = None
        self._last_decision: ScaleDecision | None = None
        self._counts: Counter[DecisionCode] = Counter()
        self._log = get_logger("tideflow.autoscaler", pool=pool)

    def __repr__(self) -> str:
        return f"PoolScaler(pool={self.pool!r}, config={self.config!r})"

    @property
    def events(self) -> list[ScaleEvent]:
        """Every scale so far, oldest first (a copy)."""
        return list(self._events)

    @property
    def last_decision(self) -> ScaleDecision | None:
        """The latest decision, so that "why did this pool not scale?" has an answer."""
        return self._last_decision

    @property
    def decision_counts(self) -> Mapping[DecisionCode, int]:
        """How many decisions of each kind were taken so far."""
        return dict(self._counts)

    def observe(self, sample: UtilizationSample) -> None:
        """Add a sample of the pool; samples must come in time order."""
        self._window.add(sample)

    def decide(self, current_size: int) -> ScaleDecision:
        """Decide the pool's target size now; ``current_size`` counts starting actors."""
        if current_size < 0:
            raise ValueError(f"PoolScaler.decide: current_size must be >= 0; got {current_size}")
        now = self._clock.now()
        self._window.evict(now)
        decision = self._decide(now, current_size)
        if decision.code != (self._last_decision.code if self._last_decision else None):
            self._log.debug(
                "pool.scale_decision",
                code=str(decision.code),
                current=current_size,
                target=decision.target,
                reason=decision.reason,
            )
        self._last_decision = decision
        self._counts[decision.code] += 1
        return decision

    def resize_completed(self, event: ScaleEvent, *, at: float | None = None) -> ScaleEvent:
        """Record that the resize of ``event`` finished (at ``at``, default now).

        Returns the event with ``duration_s`` filled, which replaces it in :attr:`events`.
        """
        index = next((i for i, e in enumerate(self._events) if e is event), None)
        if index is None:
            index = next((i for i, e in enumerate(self._events) if e == event), None)
        if index is None:
            raise ValueError(
                f"PoolScaler.resize_completed: {event!r} is not an event of pool {self.pool!r}"
            )
        done = self._clock.now() if at is None else at
        if done < event.time:
            raise ValueError(
                f"PoolScaler.resize_completed: completion time {done} is before "
                f"the event's time {event.time}"
            )
        completed = dataclasses.replace(event, duration_s=done - event.time)
        self._events[index] = completed
        self._log.info(
            "pool.scale_completed",
            from_size=event.from_size,
            to_size=event.to_size,
            duration_s=completed.duration_s,
        )
        return completed

    # -- the rules, in the order they apply -------------------------------------------------

    def _decide(self, now: float, current: int) -> ScaleDecision:
        cfg = self.config
        if current < cfg.min_size:
            return self._scale(
                now,
                current,
                cfg.min_size,
                DecisionCode.BELOW_MIN,
                f"pool of {current} is below min_size {cfg.min_size}",
            )
        if current > cfg.max_size:
            return self._scale(
                now,
                current,
                cfg.max_size,
                DecisionCode.ABOVE_MAX,
                f"pool of {current} is above max_size {cfg.max_size}",
            )
        window = self._window
        latest = window.latest
        if latest is None or len(window) == 0:
            return self._hold(
                now, current, DecisionCode.NO_SAMPLES, f"no samples in the last {cfg.window_s:g} s"
            )
        if current == 0 and latest.queued > 0:
            return self._scale(
                now,
                current,
                self._up_target(current),
                DecisionCode.EMPTY_WITH_WORK,
                f"pool is empty and {latest.queued} pieces of work wait",
            )
        covered = window.coverage(now)
        if covered + 1e-9 < cfg.window_s:  # tolerate float noise in clock readings
            return self._hold(
                now,
                current,
                DecisionCode.WINDOW_NOT_COVERED,
                f"samples since the last resize cover {covered:.2f} s of the "
                f"{cfg.window_s:g} s window",
            )
        u_min, u_max = window.min("utilization"), window.max("utilization")
        if u_min >= cfg.scale_up_threshold:
            queued_min = window.min("queued")
            if cfg.require_backlog and queued_min <= 0:
                return self._hold(
                    now,
                    current,
                    DecisionCode.NO_BACKLOG,
                    f"busy (window min utilization {u_min:.2f} >= "
                    f"{cfg.scale_up_threshold:g}) but keeping up: the queue was "
                    f"empty within the window",
                )
            if current >= cfg.max_size:
                return self._hold(
                    now,
                    current,
                    DecisionCode.AT_MAX,
                    f"would scale up (window min utilization {u_min:.2f}) but the "
                    f"pool is at max_size {cfg.max_size}",
                )
            return self._scale(
                now,
                current,
                self._up_target(current),
                DecisionCode.SCALE_UP,
                f"window min utilization {u_min:.2f} >= "
                f"{cfg.scale_up_threshold:g} with min queued {queued_min:g}; "
                f"demand {latest.queued + latest.in_flight}",
            )
        if u_max <= cfg.scale_down_threshold:
            # Starting actors count in total and are idle: utilization is low only because
            # they are not ready yet, so removing actors now would undo the last scale-up.
            if latest.starting > 0:
                return self._hold(
                    now,
                    current,
                    DecisionCode.ACTORS_STARTING,
                    f"window max utilization {u_max:.2f} <= {cfg.scale_down_threshold:g} "
                    f"but {latest.starting} actors are still starting",
                )
            queued_max = window.max("queued")
            if queued_max > 0:
                return self._hold(
                    now,
                    current,
                    DecisionCode.WORK_WAITING,
                    f"window max utilization {u_max:.2f} <= {cfg.scale_down_threshold:g} "
                    f"but up to {queued_max:g} pieces of work waited within the window",
                )
            if current <= cfg.min_size:
                return self._hold(
                    now,
                    current,
                    DecisionCode.AT_MIN,
                    f"would scale down (window max utilization {u_max:.2f}) but "
                    f"the pool is at min_size {cfg.min_size}",
                )
            return self._scale(
                now,
                current,
                self._down_target(current),
                DecisionCode.SCALE_DOWN,
                f"window max utilization {u_max:.2f} <= "
                f"{cfg.scale_down_threshold:g}; peak busy actors "
                f"{window.max('active'):g}",
            )
        return self._hold(
            now,
            current,
            DecisionCode.WITHIN_BAND,
            f"window utilization min {u_min:.2f} < {cfg.scale_up_threshold:g} "
            f"and max {u_max:.2f} > {cfg.scale_down_threshold:g}",
        )

    def _up_target(self, current: int) -> int:
        cfg = self.config
        latest = self._window.latest
        demand = (latest.queued + latest.in_flight) if latest is not None else 0
        wanted = math.ceil(demand / cfg.work_per_actor)
        cap = max(current + cfg.step, math.floor(max(current, 1) * cfg.max_growth))
        return min(cfg.max_size, cap, max(current + cfg.step, wanted))

    def _down_target(self, current: int) -> int:
        cfg = self.config
        peak = self._window.max("active")
        keep = math.ceil(peak / cfg.target_utilization) if peak > 0 else 0
        return max(cfg.min_size, min(current - cfg.step, keep))

    def _hold(self, now: float, current: int, code: DecisionCode, reason: str) -> ScaleDecision:
        return ScaleDecision(
            time=now,
            pool=self.pool,
            current=current,
            target=current,
            reason=reason,
            event=None,
            code=code,
        )

    def _scale(
        self, now: float, current: int, target: int, code: DecisionCode, reason: str
    ) -> ScaleDecision:
        if self._last_scale_at is not None and now - self._last_scale_at < self.config.debounce_s:
            ago = now - self._last_scale_at
            return self._hold(
                now,
                current,
                DecisionCode.DEBOUNCED,
                f"{reason}, but the pool scaled {ago:.2f} s ago "
                f"(debounce {self.config.debounce_s:g} s)",
            )
        event = ScaleEvent(
            time=now, pool=self.pool, from_size=current, to_size=target, reason=reason
        )
        self._events.append(event)
        self._last_scale_at = now
        self._window.clear()
        log_event(self._log, event)
        return dataclasses.replace(
            self._hold(now, current, code, reason), target=target, event=event
        )
