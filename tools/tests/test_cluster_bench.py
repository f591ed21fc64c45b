"""The cluster benchmark: the two autoscalers as modelled, its metrics, the JSON it writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import structlog

from tideflow_tools.cluster_sim import (
    POOLS,
    Cluster,
    RayV2Autoscaler,
    SimConfig,
    SimResult,
    TideflowAutoscaler,
    make_tasks,
)

BENCH = Path(__file__).resolve().parents[1] / "bench" / "cluster.py"


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield  # the bench configures logging for the whole process
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cluster", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(ticks: list[dict[str, Any]], events: list[dict[str, Any]] | None = None) -> SimResult:
    full = []
    for k, tick in enumerate(ticks):
        row = {
            "time": 5.0 * k,
            "launched": {},
            "released": {},
            "unblocked_launches": {},
            "pending_delete_groups": [],
            "replicas": {"tidal": 0, "online": 1, "offline": 0},
            "tidal_up": False,
            "homeless_fit": True,
        }
        full.append(row | tick)
    return SimResult(
        autoscaler="test",
        ticks=full,
        events=events or [],
        reclaim={"time": 0.0, "group": "tidal", "pods": []},
        totals={},
    )


def _stalled_cluster(config: SimConfig) -> Cluster:
    """A full online pod, an offline pod being deleted and two queued 4-CPU tasks."""
    cluster = Cluster(POOLS, config)
    cluster.replicas["offline"] = 1
    cluster.reconcile(0.0, ready_now=True)
    online = next(n for n in cluster.pods if n.startswith("online"))
    offline = next(n for n in cluster.pods if n.startswith("offline"))
    cluster.pods[online].tasks.append((1e9, 8.0, 1e9))
    cluster.replicas["offline"] = 0
    cluster.to_delete["offline"].add(offline)
    cluster.reconcile(1.0)
    cluster.queue = [(4.0, 60.0), (4.0, 60.0)]
    return cluster


def test_ray_v2_launches_nothing_while_another_group_has_a_pending_delete():
    config = SimConfig()
    cluster = _stalled_cluster(config)
    applied = RayV2Autoscaler(POOLS, config).step(cluster, 2.0)
    assert applied.launched == {}
    assert applied.unblocked_launches == {"online": 1}  # by fit: both tasks fill one pod


def test_tideflow_launches_in_another_group_while_a_delete_is_pending():
    config = SimConfig()
    cluster = _stalled_cluster(config)
    applied = TideflowAutoscaler(POOLS, config).step(cluster, 2.0)
    assert applied.launched == {"tidal": 2}
    assert cluster.replicas["tidal"] == 2


def test_the_trace_is_the_same_for_the_same_seed():
    config = SimConfig(duration_s=200.0)
    assert make_tasks(config) == make_tasks(config)
    assert make_tasks(config) != make_tasks(SimConfig(duration_s=200.0, seed=1))


def test_a_launch_in_a_lower_priority_pool_with_room_above_is_a_priority_miss(bench):
    ticks = [{"launched": {"tidal": 1}}, {"launched": {"offline": 1}}]
    report = bench.priority_decisions(_result(ticks), POOLS, outage_s=0.0)
    assert (report["decisions"], report["followed"], report["pct"]) == (2, 1, 50.0)
    assert report["first_misses"][0]["skipped"] == ["online", "tidal"]


def test_released_node_seconds_count_only_while_a_tidal_pod_is_up(bench):
    ticks = [
        {"released": {"online": 1}, "tidal_up": True},
        {"released": {"tidal": 1}, "tidal_up": True},
        {"tidal_up": False},
    ]
    report = bench.tidal_release(_result(ticks), POOLS, tick_s=5.0)
    assert report["released_node_seconds"] == {"tidal": 5.0, "online": 10.0, "offline": 0.0}
    assert report["pct"] == pytest.approx(100 / 3)


def test_launches_held_behind_another_groups_delete_count_as_delay(bench):
    ticks = [
        {"unblocked_launches": {"tidal": 1}, "pending_delete_groups": ["online"]},
        {"unblocked_launches": {"tidal": 1}, "pending_delete_groups": ["tidal"]},
        {"unblocked_launches": {"tidal": 1}, "launched": {"tidal": 1}},
    ]
    assert bench.cross_pool_delay(_result(ticks), tick_s=5.0) == 5.0


def test_replacement_counts_ticks_until_the_homeless_work_fits_for_good(bench):
    fits = [True, False, False, True, True, True]
    result = _result([{"homeless_fit": f} for f in fits])
    assert bench.replacement_ticks(result, notice_s=10.0) == {"ticks": 4, "within_run": True}


def test_direction_changes_are_counted_per_group_within_a_window(bench):
    events = [
        {"time": t, "group": "online", "direction": d, "cause": c}
        for t, d, c in [(0, "up", "demand"), (10, "down", "idle"), (20, "up", "demand")]
    ] + [{"time": 30.0, "group": "tidal", "direction": "down", "cause": "reclaim"}]
    changes = bench.direction_changes(_result([], events), window_s=30.0)
    assert changes == {"online": 2, "tidal": 0}
    assert bench.direction_changes(_result([], events), window_s=10.0)["online"] == 1


def test_bench_writes_goals_computed_from_the_run_and_the_figure(bench, tmp_path, capsys):
    assert bench.main(["--out", str(tmp_path), "--seed", "3", "--duration", "400"]) == 0

    result = json.loads((tmp_path / "cluster.json").read_text())
    assert result["name"] == "cluster"
    assert {"cores", "memory_gib", "gpu"} <= result["machine"].keys()
    ours, ray = result["metrics"]["tideflow"], result["metrics"]["ray_v2"]
    goals, ray_goals = result["goals"], result["ray_v2_against_the_goals"]
    assert (
        set(goals)
        == set(ray_goals)
        == {
            "scale_up_follows_priority_pct",
            "tidal_share_of_released_node_seconds_pct",
            "cross_pool_launch_delay_s",
            "reclaim_replacement_ticks",
            "max_direction_changes_per_window",
        }
    )
    for metrics, table in ((ours, goals), (ray, ray_goals)):
        assert table["scale_up_follows_priority_pct"]["value"] == round(
            metrics["priority"]["pct"], 4
        )
        assert (
            table["reclaim_replacement_ticks"]["value"] == (metrics["reclaim_replacement"]["ticks"])
        )
        assert (
            table["max_direction_changes_per_window"]["value"]
            == (metrics["max_direction_changes_per_window"])
        )
        assert metrics["priority"]["decisions"] > 0
        assert metrics["tasks_completed"] > 0
    assert goals["scale_up_follows_priority_pct"]["target"] == "≥ 100"
    assert goals["cross_pool_launch_delay_s"]["target"] == "≤ 0.0"
    assert all(isinstance(g["met"], bool) for g in goals.values())
    decided = [e for e in result["events"]["tideflow"] if e["cause"] != "reclaim"]
    assert len(decided) == ours["scale_ups"] + ours["scale_downs"]
    assert "ResourceDemandScheduler" in result["setup"]["ray_v2"]
    assert (tmp_path / "cluster.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "scale_up_follows_priority_pct" in capsys.readouterr().out
