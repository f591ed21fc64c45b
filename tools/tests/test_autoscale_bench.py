"""The autoscaler benchmark: Ray Data's rule as modelled, the simulation, the JSON it writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import structlog

from tideflow_tools import demo
from tideflow_tools.autoscale_policies import PoolView, RayDataRule, ray_data_delta
from tideflow_tools.autoscale_sim import PoolModel, compare
from tideflow_tools.autoscale_trace import TraceConfig, make_trace
from tideflow_tools.bench import at_least, at_most

BENCH = Path(__file__).resolve().parents[1] / "bench" / "autoscaler.py"


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield  # the bench and the demo configure logging for the whole process
    structlog.reset_defaults()


def _delta(size: int, in_flight: int, pending: int = 0) -> int:
    return ray_data_delta(
        size=size, pending=pending, in_flight=in_flight, max_concurrency=1, min_size=1, max_size=40
    )[0]


def test_ray_rule_scales_up_at_utilization_175_in_proportion():
    assert _delta(size=4, in_flight=7) == 1  # util 1.75: up by max(1, ceil(4·0))
    assert _delta(size=4, in_flight=6) == 0  # util 1.5: within limits
    assert _delta(size=10, in_flight=20) == 2  # util 2.0: ceil(10·(2/1.75 − 1)) = 2
    assert _delta(size=39, in_flight=78) == 1  # capped at max_size


def test_ray_rule_scales_down_by_one_at_utilization_05_unless_actors_are_pending():
    assert _delta(size=10, in_flight=5) == -1
    assert _delta(size=10, in_flight=6) == 0
    assert _delta(size=10, in_flight=0, pending=1) == 0
    assert _delta(size=1, in_flight=0) == 0  # at min size


def test_ray_rule_ignores_scale_down_for_10_s_after_a_scale_up():
    rule = RayDataRule()

    def view(t: float, in_flight: int) -> PoolView:
        return PoolView(
            time=t,
            running=4,
            pending=0,
            active=min(4, in_flight),
            in_flight=in_flight,
            queued=0,
            max_concurrency=1,
        )

    up = view(0.0, 8)
    assert rule.step(up, min_size=1, max_size=40) == 5
    rule.applied(up, 5)
    assert rule.step(view(10.0, 0), min_size=1, max_size=40) is None
    assert rule.step(view(10.05, 0), min_size=1, max_size=40) == 3


def test_trace_is_the_same_for_the_same_seed():
    config = TraceConfig(duration_s=30.0)
    a, b = make_trace(3, config), make_trace(3, config)
    assert np.array_equal(a.arrivals, b.arrivals)
    assert np.array_equal(a.service_s, b.service_s)
    assert not np.array_equal(a.arrivals, make_trace(4, config).arrivals)


def test_both_policies_replay_the_same_items():
    comparison = compare(1, duration_s=60.0, model=PoolModel(max_size=20))
    ray, ours = (comparison.results[k].metrics for k in ("ray_data", "tideflow"))
    assert ray["items"] == ours["items"] == comparison.trace.items
    assert ray["scale_events"] > 0
    assert ray["scale_events"] == ray["scale_ups"] + ray["scale_downs"]
    assert ours["scale_events"] == len(comparison.results["tideflow"].events)


def test_a_missed_goal_is_written_as_missed():
    assert at_least(4.2, 5).met is False
    assert at_most(1.3, 1.0).target == "≤ 1.0"
    assert at_most(1.3, 1.0).met is False


def test_bench_writes_the_result_schema_and_the_figure(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_autoscaler", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.main(["--out", str(tmp_path), "--seed", "2", "--duration", "60"]) == 0

    result = json.loads((tmp_path / "autoscaler.json").read_text())
    assert result["name"] == "autoscaler"
    assert {"cores", "memory_gib", "gpu"} <= result["machine"].keys()
    for policy in ("ray_data", "tideflow"):
        metrics = result["metrics"][policy]
        for key in ("scale_events", "direction_reversals", "backlog_seconds", "actor_seconds"):
            assert isinstance(metrics[key], int | float)
        assert len(result["events"][policy]) == metrics["scale_events"]
    goals = result["goals"]
    assert goals["scale_events_ratio"]["target"] == "≥ 5"
    assert goals["backlog_seconds_ratio"]["target"] == "≤ 1.0"
    assert all(isinstance(g["met"], bool) and isinstance(g["value"], float) for g in goals.values())
    assert (tmp_path / "autoscaler.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_prints_a_summary_table(capsys):
    assert demo.main(["--only", "sim", "--seed", "1", "--duration", "30"]) == 0
    out = capsys.readouterr().out
    assert "Tideflow PoolScaler: 100% simulated" in out
    assert "scale events" in out
    assert "fewer scale events" in out


def test_demo_rejects_a_non_positive_duration():
    with pytest.raises(SystemExit):
        demo.main(["--duration", "0"])
