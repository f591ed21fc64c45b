"""The pool scaling policy, driven by a fake clock: no Ray, no sleeping."""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Callable

import pytest
import structlog

from tideflow.core.autoscaler import (
    DecisionCode,
    PoolScaler,
    ScaleDecision,
    ScalingConfig,
    UtilizationSample,
)
from tideflow.core.errors import ConfigError
from tideflow.core.observability import ScaleEvent, configure_logging
from tideflow.core.testing import FakeClock

TICK = 0.05

Load = Callable[[float, int], tuple[int, int]]
"""(time, size) → (active, queued)."""


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield
    structlog.reset_defaults()


def _config(**overrides: object) -> ScalingConfig:
    fields: dict[str, object] = {"min_size": 1, "max_size": 64}
    fields.update(overrides)
    return ScalingConfig(**fields)  # type: ignore[arg-type]


def _run(
    scaler: PoolScaler,
    clock: FakeClock,
    load: Load,
    *,
    seconds: float,
    size: int,
    apply: bool = True,
) -> tuple[list[ScaleDecision], int]:
    """Sample and decide every tick for ``seconds``; apply each scale when ``apply``."""
    decisions = []
    end = clock.now() + seconds
    while clock.now() < end - 1e-9:
        clock.advance(TICK)
        active, queued = load(clock.now(), size)
        scaler.observe(
            UtilizationSample(
                time=clock.now(),
                active=min(active, size),
                total=size,
                queued=queued,
                in_flight=min(active, size),
            )
        )
        decision = scaler.decide(size)
        decisions.append(decision)
        if apply and decision.scale:
            size = decision.target
    return decisions, size


def _saturated(t: float, size: int) -> tuple[int, int]:
    return size, 30


def _idle(t: float, size: int) -> tuple[int, int]:
    return 0, 0


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("min_size", -1, ">= 0"),
        ("max_size", 0, ">= 1"),
        ("window_s", 0.0, "> 0"),
        ("debounce_s", -1.0, ">= 0"),
        ("scale_up_threshold", 1.5, "in (0, 1]"),
        ("scale_down_threshold", 0.95, "< scale_up_threshold"),
        ("step", 0, ">= 1"),
        ("work_per_actor", 0.0, "> 0"),
        ("max_growth", 0.5, ">= 1"),
        ("target_utilization", 0.4, "> scale_down_threshold"),
        ("min_size", 1.5, "an int"),
    ],
)
def test_config_rejects_invalid_values_naming_the_field(field, value, allowed):
    with pytest.raises(
        ConfigError, match=rf"ScalingConfig\.{field} must be .*{re.escape(allowed)}"
    ):
        _config(**{field: value})


def test_no_decision_until_samples_cover_the_window():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)
    decisions, _ = _run(scaler, clock, _saturated, seconds=4.9, size=4)
    assert {d.code for d in decisions} == {DecisionCode.WINDOW_NOT_COVERED}
    decisions, _ = _run(scaler, clock, _saturated, seconds=0.2, size=4)
    assert [d.code for d in decisions if d.scale] == [DecisionCode.SCALE_UP]


def test_scale_up_follows_the_window_minimum_not_the_last_sample():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)

    def one_dip(t: float, size: int) -> tuple[int, int]:
        return (size // 2, 10) if abs(t - 3.0) < 1e-6 else (size, 10)

    decisions, _ = _run(scaler, clock, one_dip, seconds=6.0, size=4)
    assert decisions[-1].code is DecisionCode.WITHIN_BAND
    assert "min 0.50" in decisions[-1].reason
    # Once the dip at t=3 leaves the 5 s window, the window minimum allows a scale-up.
    decisions, _ = _run(scaler, clock, one_dip, seconds=2.1, size=4)
    assert [d.time for d in decisions if d.scale] == [pytest.approx(8.05)]


def test_scale_down_follows_the_window_maximum_not_the_last_sample():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)

    def one_peak(t: float, size: int) -> tuple[int, int]:
        return (size, 0) if abs(t - 3.0) < 1e-6 else (1, 0)

    decisions, _ = _run(scaler, clock, one_peak, seconds=6.0, size=10)
    assert decisions[-1].code is DecisionCode.WITHIN_BAND
    assert "max 1.00" in decisions[-1].reason
    decisions, _ = _run(scaler, clock, one_peak, seconds=2.1, size=10)
    assert [d.time for d in decisions if d.scale] == [pytest.approx(8.05)]


def _flipping(t: float, size: int) -> tuple[int, int]:
    """Saturated with a backlog for 200 ms, then idle for 200 ms, and so on."""
    return (size, 20) if round(t / TICK) // 4 % 2 == 0 else (0, 0)


def test_flipping_utilization_makes_no_scale_event_with_the_default_window():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)
    decisions, _ = _run(scaler, clock, _flipping, seconds=60.0, size=8)
    assert scaler.events == []
    assert decisions[-1].code is DecisionCode.WITHIN_BAND


def test_flipping_utilization_scales_at_most_once_per_debounce_window():
    # A window shorter than a flip sees each phase alone: only the debounce holds it back.
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(window_s=0.1, debounce_s=1.0), clock=clock)
    decisions, _ = _run(scaler, clock, _flipping, seconds=60.0, size=8)
    times = [e.time for e in scaler.events]
    assert len(times) >= 20
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times))
    assert DecisionCode.DEBOUNCED in {d.code for d in decisions}


def test_busy_pool_without_backlog_does_not_scale_up():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)
    decisions, _ = _run(scaler, clock, lambda t, size: (size, 0), seconds=6.0, size=4)
    assert decisions[-1].code is DecisionCode.NO_BACKLOG
    assert scaler.events == []


def test_busy_pool_scales_up_without_backlog_when_not_required():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(require_backlog=False), clock=clock)
    decisions, _ = _run(scaler, clock, lambda t, size: (size, 0), seconds=5.1, size=4)
    assert [d.code for d in decisions if d.scale] == [DecisionCode.SCALE_UP]


def _one_up(config: ScalingConfig, *, size: int, queued: int) -> ScaleDecision:
    clock = FakeClock()
    scaler = PoolScaler("embed", config, clock=clock)
    decisions, _ = _run(
        scaler, clock, lambda t, s: (s, queued), seconds=5.05, size=size, apply=False
    )
    return decisions[-1]


def test_scale_up_sizes_to_demand_within_the_growth_cap():
    # demand = queued 30 + in flight 4 = 34 → 17 actors at 2 per actor; growth caps it at 8.
    assert _one_up(_config(), size=4, queued=30).target == 8
    assert _one_up(_config(max_growth=10), size=4, queued=30).target == 17
    assert _one_up(_config(max_growth=10, max_size=12), size=4, queued=30).target == 12
    assert _one_up(_config(step=3), size=4, queued=1).target == 7


def test_scale_down_sizes_to_the_window_peak_of_busy_actors():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(min_size=2), clock=clock)
    decisions, _ = _run(scaler, clock, lambda t, s: (6 if t < 1 else 2, 0), seconds=5.05, size=20)
    assert decisions[-1].target == 8  # ceil(6 / 0.75)
    assert "peak busy actors 6" in decisions[-1].reason


def test_pool_at_bounds_holds_and_says_so():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(max_size=4), clock=clock)
    decisions, _ = _run(scaler, clock, _saturated, seconds=5.1, size=4)
    assert decisions[-1].code is DecisionCode.AT_MAX
    assert "max_size 4" in decisions[-1].reason

    clock = FakeClock()
    scaler = PoolScaler("embed", _config(min_size=2), clock=clock)
    decisions, _ = _run(scaler, clock, _idle, seconds=5.1, size=2)
    assert decisions[-1].code is DecisionCode.AT_MIN
    assert scaler.last_decision is decisions[-1]


def test_starting_actors_keep_a_second_scale_up_back_until_a_full_busy_window():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)
    _, size = _run(scaler, clock, _saturated, seconds=5.05, size=4)
    assert size == 8
    first = scaler.events[0]

    # The 4 new actors take 3 s to start: they count in total and are idle.
    def cold_start(t: float, size: int) -> tuple[int, int]:
        return (4 if t < first.time + 3.0 else size), 30

    decisions, size = _run(scaler, clock, cold_start, seconds=7.9, size=size)
    assert size == 8
    assert {d.code for d in decisions} <= {
        DecisionCode.WINDOW_NOT_COVERED,
        DecisionCode.WITHIN_BAND,
    }
    # 5 s after the new actors got busy, the backlog still stands: one more step.
    decisions, size = _run(scaler, clock, cold_start, seconds=0.2, size=size)
    assert size == 16
    assert len(scaler.events) == 2


def test_pool_below_min_size_scales_up_at_once():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(min_size=3), clock=clock)
    decision = scaler.decide(1)
    assert (decision.target, decision.code) == (3, DecisionCode.BELOW_MIN)


def test_empty_pool_with_waiting_work_starts_without_a_full_window():
    clock = FakeClock(start=1.0)
    scaler = PoolScaler("embed", _config(min_size=0), clock=clock)
    scaler.observe(UtilizationSample(time=1.0, active=0, total=0, queued=5))
    decision = scaler.decide(0)
    assert decision.code is DecisionCode.EMPTY_WITH_WORK
    assert decision.target == 2  # an empty pool counts as one actor for the growth cap


def test_no_samples_and_gaps_in_sampling_restart_the_window():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)
    assert scaler.decide(4).code is DecisionCode.NO_SAMPLES
    _run(scaler, clock, _saturated, seconds=4.0, size=4)
    clock.advance(6.0)
    assert scaler.decide(4).code is DecisionCode.NO_SAMPLES
    decisions, _ = _run(scaler, clock, _saturated, seconds=4.0, size=4)
    assert decisions[-1].code is DecisionCode.WINDOW_NOT_COVERED


def test_samples_out_of_time_order_are_rejected():
    scaler = PoolScaler("embed", _config(), clock=FakeClock())
    scaler.observe(UtilizationSample(time=2.0, active=1, total=1))
    with pytest.raises(ValueError, match="time order"):
        scaler.observe(UtilizationSample(time=1.0, active=1, total=1))


def test_scale_events_are_logged_and_decisions_counted():
    out = io.StringIO()
    configure_logging(format="json", stream=out)
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)
    _run(scaler, clock, _saturated, seconds=5.05, size=4)

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    scaled = [r for r in records if r["event"] == "pool.scaled"]
    assert len(scaled) == 1
    assert (scaled[0]["pool"], scaled[0]["from_size"], scaled[0]["to_size"]) == ("embed", 4, 8)
    assert "window min utilization 1.00" in scaled[0]["reason"]
    counts = scaler.decision_counts
    assert counts[DecisionCode.SCALE_UP] == 1
    assert counts[DecisionCode.WINDOW_NOT_COVERED] == 100


def test_resize_completed_records_the_duration_in_the_events():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(), clock=clock)
    _run(scaler, clock, _saturated, seconds=5.05, size=4)
    event = scaler.events[0]
    clock.advance(3.5)
    done = scaler.resize_completed(event)
    assert done.duration_s == pytest.approx(3.5)
    assert scaler.events == [done]
    assert scaler.resize_completed(done, at=event.time + 4.0).duration_s == pytest.approx(4.0)


def test_resize_completed_rejects_an_event_of_another_pool():
    scaler = PoolScaler("embed", _config(), clock=FakeClock())
    stranger = ScaleEvent(time=0.0, pool="decode", from_size=1, to_size=2, reason="x")
    with pytest.raises(ValueError, match="not an event of pool 'embed'"):
        scaler.resize_completed(stranger)


def _sample(t: float, *, active: int, total: int, queued: int = 0, starting: int = 0):
    return UtilizationSample(
        time=t, active=active, total=total, queued=queued, in_flight=active, starting=starting
    )


def test_no_scale_down_while_new_actors_are_still_starting():
    # 1 busy actor + 1 starting for longer than the window: utilization 0.5 <= 0.5, but the
    # idle actor is idle only because it is not ready; removing it would undo the scale-up.
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(window_s=2.0), clock=clock)
    for _ in range(60):
        clock.advance(TICK)
        scaler.observe(_sample(clock.now(), active=1, total=2, queued=0, starting=1))
        decision = scaler.decide(2)
        assert not decision.scale
    assert decision.code is DecisionCode.ACTORS_STARTING
    assert "still starting" in decision.reason


def test_no_scale_down_while_work_waits_within_the_window():
    clock = FakeClock()
    scaler = PoolScaler("embed", _config(window_s=2.0), clock=clock)
    for i in range(60):
        clock.advance(TICK)
        queued = 5 if i % 10 == 0 else 0  # work waits now and then (a burst per 0.5 s)
        scaler.observe(_sample(clock.now(), active=1, total=4, queued=queued))
        decision = scaler.decide(4)
        assert not decision.scale
    assert decision.code is DecisionCode.WORK_WAITING


def test_sample_rejects_more_busy_and_starting_actors_than_the_pool_has():
    with pytest.raises(ValueError, match="cannot exceed total"):
        UtilizationSample(time=0.0, active=2, total=3, starting=2)
