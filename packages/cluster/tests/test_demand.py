"""Demand readers: Ray's GCS autoscaler state, a demand file, a demand set in code, and
Tideflow jobs' stage pools through their Prometheus endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tideflow.cluster import (
    CombinedDemand,
    Demand,
    DemandError,
    FileDemand,
    NodeUsage,
    PoolDemand,
    StaticDemand,
    demand_from_pool_metrics,
    demand_from_resource_state,
)


def test_ray_resource_state_becomes_bundles_and_node_usage() -> None:
    autoscaler_pb2 = pytest.importorskip("ray.core.generated.autoscaler_pb2")
    state = autoscaler_pb2.ClusterResourceState()
    pending = state.pending_resource_requests.add(count=2)
    pending.request.resources_bundle.update({"CPU": 4.0, "GPU": 0.0})
    gang = state.pending_gang_resource_requests.add()
    gang.requests.add().resources_bundle.update({"GPU": 1.0})
    constraint = state.cluster_resource_constraints.add()
    constraint.resource_requests.add(count=1).request.resources_bundle.update({"spot": 1.0})
    busy = state.node_states.add(
        instance_id="tideflow-online-worker-abc", status=autoscaler_pb2.NodeStatus.RUNNING
    )
    busy.total_resources.update({"CPU": 8.0})
    busy.available_resources.update({"CPU": 2.0})
    idle = state.node_states.add(
        instance_id="tideflow-spot-worker-xyz",
        status=autoscaler_pb2.NodeStatus.IDLE,
        idle_duration_ms=90_000,
    )
    idle.total_resources.update({"CPU": 8.0})
    idle.available_resources.update({"CPU": 8.0})
    state.node_states.add(instance_id="dead-one", status=autoscaler_pb2.NodeStatus.DEAD)

    demand = demand_from_resource_state(state)

    assert [dict(b) for b in demand.bundles] == [
        {"CPU": 4.0},
        {"CPU": 4.0},
        {"GPU": 1.0},
        {"spot": 1.0},
    ]
    assert demand.nodes["tideflow-online-worker-abc"] == NodeUsage(used={"CPU": 6.0})
    assert demand.nodes["tideflow-spot-worker-xyz"].idle_s == 90.0
    assert "dead-one" not in demand.nodes


def test_demand_file_is_read_at_every_call(tmp_path: Path) -> None:
    path = tmp_path / "demand.json"
    reader = FileDemand(path)
    path.write_text(json.dumps([{"CPU": 8}]))
    assert [dict(b) for b in reader().bundles] == [{"CPU": 8.0}]
    path.write_text(json.dumps({"bundles": [], "nodes": {"p1": {"idle_s": 5}}}))
    assert reader().bundles == () and reader().nodes["p1"].idle_s == 5.0


@pytest.mark.parametrize("content", ['{"bundles": [{"CPU": -1}]}', '{"wanted": []}', "[1, 2]", "{"])
def test_malformed_demand_file_is_a_demand_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "demand.json"
    path.write_text(content)
    with pytest.raises(DemandError, match="demand"):
        FileDemand(path)()


def _job_with_stages() -> Any:
    from tideflow.streaming._metrics import JobResult, StageMetrics

    def stage(name: str, **fields: Any) -> StageMetrics:
        return StageMetrics(name=name, **fields)

    return JobResult(
        job_id="embed",
        stages={
            # work waiting, room to grow: wants one more actor
            "embed": stage(
                "embed", queue_depth=3, actors=2, actors_max=4,
                actor_bundle={"CPU": 1.0, "GPU": 1.0, "pool_online": 1.0},
            ),
            # work waiting, at its maximum: wants nothing
            "decode": stage("decode", queue_depth=5, actors=2, actors_max=2,
                            actor_bundle={"CPU": 2.0}),
            # room to grow, nothing waiting: wants nothing
            "ocr": stage("ocr", queue_depth=0, actors=1, actors_max=3, actor_bundle={"CPU": 1.0}),
        },
    )  # fmt: skip


def test_pool_demand_reads_a_jobs_metrics_endpoint_and_asks_one_actor_per_starved_stage() -> None:
    from tideflow.streaming._prometheus import serve_metrics

    result = _job_with_stages()
    server = serve_metrics(lambda: result, 0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        demand = CombinedDemand(StaticDemand(Demand(bundles=({"CPU": 4.0},))), PoolDemand([url]))()
    finally:
        server.shutdown()
    assert [dict(b) for b in demand.bundles] == [
        {"CPU": 4.0},
        {"CPU": 1.0, "GPU": 1.0, "pool_online": 1.0},
    ]


def test_pool_demand_names_the_url_it_cannot_read_and_rejects_bad_urls() -> None:
    with pytest.raises(DemandError, match="http"):
        PoolDemand(["ftp://job:9100/metrics"])
    with pytest.raises(DemandError, match=r"127\.0\.0\.1:9"):
        PoolDemand(["http://127.0.0.1:9/metrics"], timeout_s=1)()
    with pytest.raises(DemandError, match="Prometheus"):
        demand_from_pool_metrics('tideflow_pool_actors{job="a" 1\n')
