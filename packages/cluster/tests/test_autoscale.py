"""The autoscaler against the API emulator and the fake KubeRay operator, with the real
multi-pool policy and a fake clock: what it patches, and what it never patches."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from _kube_emulator import RAYCLUSTERS
from _rig import Rig

from tideflow.cluster import (
    ClusterView,
    GroupChange,
    NodeUsage,
    PatchSafetyError,
    build_patch,
    check_patch,
    observe,
)
from tideflow.cluster.demand import Demand

CPU8 = {"CPU": 8.0}


def _added_deletes(patch: list[dict[str, Any]], cluster: dict[str, Any]) -> dict[str, set[str]]:
    """Pod names each group's workersToDelete gains from ``patch`` applied to ``cluster``."""
    import jsonpatch

    after = jsonpatch.apply_patch(copy.deepcopy(cluster), patch)
    out = {}
    for old, new in zip(
        cluster["spec"]["workerGroupSpecs"], after["spec"]["workerGroupSpecs"], strict=True
    ):
        before = set((old.get("scaleStrategy") or {}).get("workersToDelete") or ())
        now = set((new.get("scaleStrategy") or {}).get("workersToDelete") or ())
        out[new["groupName"]] = now - before
    return out


def test_scale_up_patches_replicas_of_the_highest_priority_pool(rig: Rig) -> None:
    rig.demand.set([CPU8, CPU8])
    result = rig.scaler.tick()
    assert result.ok, result.error
    assert rig.replicas() == {"online": 2, "batch": 0, "spot": 0}
    (patch,) = rig.kube.patch_requests()
    assert patch == [
        {"op": "test", "path": "/spec/workerGroupSpecs/0/groupName", "value": "online"},
        {"op": "test", "path": "/spec/workerGroupSpecs/0/replicas", "value": 0},
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2},
    ]


def test_scale_up_spills_to_the_next_pool_in_priority_order(rig: Rig) -> None:
    rig.demand.set([CPU8] * 5)
    rig.scaler.tick()
    assert rig.replicas() == {"online": 3, "batch": 2, "spot": 0}


def test_no_change_sends_no_patch(rig: Rig) -> None:
    result = rig.scaler.tick()
    assert result.ok and result.patch == () and rig.kube.patch_requests() == []


def test_scale_down_names_tidal_pods_first(rig: Rig) -> None:
    rig.set_replicas(online=2, spot=2)
    busy_spot, idle_spot = rig.operator.names("spot")
    rig.idle(600)
    nodes = dict(rig.demand.demand.nodes)
    nodes[busy_spot] = NodeUsage(used=CPU8)
    rig.demand.set([], **nodes)
    rig.scaler.tick()
    assert len(rig.kube.patch_requests()) == 1
    cluster = rig.kube.get(RAYCLUSTERS, "ray", "tideflow")
    assert cluster is not None
    online, _, spot = cluster["spec"]["workerGroupSpecs"]
    assert spot["scaleStrategy"]["workersToDelete"] == [idle_spot]
    assert spot["replicas"] == 1
    # the idle dedicated pods stay while a tidal pod is up
    assert online["replicas"] == 2 and online["scaleStrategy"]["workersToDelete"] == []
    rig.operator.reconcile()
    rig.idle(600)
    rig.scaler.tick()
    assert rig.replicas() == {"online": 0, "batch": 0, "spot": 0}


def test_scale_down_patch_is_guarded_and_appends_pod_names(rig: Rig) -> None:
    rig.set_replicas(spot=3)
    rig.idle(600)
    spot_pods = rig.operator.names("spot")
    rig.scaler.tick()
    (patch,) = rig.kube.patch_requests()
    base = "/spec/workerGroupSpecs/2"
    assert patch[:3] == [
        {"op": "test", "path": f"{base}/groupName", "value": "spot"},
        {"op": "test", "path": f"{base}/replicas", "value": 3},
        {"op": "replace", "path": f"{base}/replicas", "value": 0},
    ]
    assert patch[3] == {"op": "test", "path": f"{base}/scaleStrategy/workersToDelete", "value": []}
    appended = [op["value"] for op in patch[4:]]
    assert all(op["path"].endswith("/workersToDelete/-") for op in patch[4:])
    assert sorted(appended) == spot_pods


def test_every_patch_names_only_pods_of_its_group_over_a_whole_trace(rig: Rig) -> None:
    seen: list[tuple[list[dict[str, Any]], dict[str, Any], dict[str, list[str]]]] = []

    def tick() -> None:
        cluster = rig.kube.get(RAYCLUSTERS, "ray", "tideflow")
        assert cluster is not None
        groups = {g: rig.operator.names(g) for g in ("online", "batch", "spot")}
        before = len(rig.kube.patch_requests())
        assert rig.scaler.tick().ok
        seen.extend((p, cluster, groups) for p in rig.kube.patch_requests()[before:])
        rig.operator.reconcile()
        rig.clock.advance(15)

    for n in (2, 5, 9, 9, 9):  # ramp up, steady
        rig.demand.set([CPU8] * n)
        tick()
    for pod in rig.operator.names("spot")[:2]:  # a reclaim
        rig.operator.reclaim(pod)
    tick()
    for _ in range(8):  # ramp down
        rig.demand.set([])
        rig.idle(600)
        tick()
    assert seen
    for patch, cluster, groups in seen:
        for group, names in _added_deletes(patch, cluster).items():
            assert names <= set(groups[group]), (group, names, groups)
    assert sum(rig.replicas().values()) == 0


def test_reclaimed_tidal_pod_is_released_and_replaced_in_the_next_pool(rig: Rig) -> None:
    rig.set_replicas(online=3, batch=3, spot=2)
    spot = rig.operator.names("spot")
    busy = {"CPU": 8.0}
    rig.demand.set([], **{p["metadata"]["name"]: NodeUsage(used=busy) for p in rig.operator.pods()})
    deadline = rig.operator.reclaim(spot[0])
    assert deadline == rig.clock.now() + 30
    rig.scaler.tick()
    cluster = rig.kube.get(RAYCLUSTERS, "ray", "tideflow")
    assert cluster is not None
    assert cluster["spec"]["workerGroupSpecs"][2]["scaleStrategy"]["workersToDelete"] == [spot[0]]
    # online and batch are full: the lost work can only go to spot, which is on hold
    assert rig.replicas()["spot"] == 1
    holds = rig.scaler.metrics.exposition()
    assert 'tideflow_cluster_scale_holds_total{code="reclaim_hold",pool="spot"} 1.0' in holds
    rig.clock.advance(30)
    rig.operator.reconcile()
    assert spot[0] not in rig.operator.names("spot")


def test_reclaim_with_room_elsewhere_plans_the_replacement_on_the_same_tick(rig: Rig) -> None:
    rig.set_replicas(spot=2)
    pods = rig.operator.names("spot")
    rig.demand.set([], **{p: NodeUsage(used=CPU8) for p in pods})
    rig.operator.reclaim(pods[0])
    rig.scaler.tick()
    assert rig.replicas() == {"online": 1, "batch": 0, "spot": 1}


def test_pending_delete_in_one_pool_does_not_delay_another_pools_launch(rig: Rig) -> None:
    rig.set_replicas(spot=2)
    rig.idle(600)
    rig.scaler.tick()  # spot pods named for deletion; the operator has not acted yet
    assert rig.replicas()["spot"] == 0
    rig.demand.set([CPU8])
    result = rig.scaler.tick()
    assert result.ok
    assert result.groups["spot"].pending_deletes
    assert rig.replicas()["online"] == 1


def test_stale_workers_to_delete_entries_are_cleared(rig: Rig) -> None:
    cluster = rig.kube.get(RAYCLUSTERS, "ray", "tideflow")
    assert cluster is not None
    cluster["spec"]["workerGroupSpecs"][1]["scaleStrategy"]["workersToDelete"] = ["gone-pod"]
    rig.kube.put(RAYCLUSTERS, cluster)
    assert rig.scaler.tick().ok
    assert rig.kube.patch_requests()[-1][-1] == {
        "op": "replace",
        "path": "/spec/workerGroupSpecs/1/scaleStrategy/workersToDelete",
        "value": [],
    }


def test_a_changed_raycluster_makes_the_tick_a_conflict_not_a_wrong_patch(rig: Rig) -> None:
    class Meddler:
        """Someone edits replicas between the autoscaler's read and its patch."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def decide(self, view: ClusterView) -> list[GroupChange]:
            rig.set_replicas(online=1)
            return self.inner.decide(view)

    rig.scaler.policy = Meddler(rig.scaler.policy)
    rig.demand.set([CPU8, CPU8])
    result = rig.scaler.tick()
    assert not result.ok and result.error_kind == "conflict"
    assert rig.replicas()["online"] == 1
    assert 'tideflow_cluster_tick_errors_total{kind="conflict"} 1.0' in (
        rig.scaler.metrics.exposition()
    )


def test_a_policy_naming_another_groups_pod_is_refused(rig: Rig) -> None:
    rig.set_replicas(online=1, spot=1)
    cluster = rig.kube.get(RAYCLUSTERS, "ray", "tideflow")
    pods = rig.operator.pods()
    assert cluster is not None
    _, states = observe(cluster, pods, Demand(), ["online", "batch", "spot"])
    online_pod = rig.operator.names("online")[0]
    wrong = GroupChange(group="spot", replicas=0, workers_to_delete=(online_pod,), reason="x")
    with pytest.raises(PatchSafetyError, match="only the group's pods"):
        build_patch([wrong], states)
    forged = [
        {
            "op": "add",
            "path": "/spec/workerGroupSpecs/2/scaleStrategy/workersToDelete/-",
            "value": online_pod,
        }
    ]
    with pytest.raises(PatchSafetyError, match="outside the group"):
        check_patch(cluster, forged, states)


def test_a_patch_touching_other_fields_is_refused(rig: Rig) -> None:
    cluster = rig.kube.get(RAYCLUSTERS, "ray", "tideflow")
    assert cluster is not None
    _, states = observe(cluster, [], Demand(), ["online", "batch", "spot"])
    bad = [{"op": "replace", "path": "/spec/workerGroupSpecs/0/template", "value": {}}]
    with pytest.raises(PatchSafetyError, match="only replicas and scaleStrategy"):
        check_patch(cluster, bad, states)


def test_policy_failure_is_counted_and_the_loop_goes_on(rig: Rig) -> None:
    class Broken:
        def decide(self, view: ClusterView) -> list[GroupChange]:
            raise ZeroDivisionError("oops")

    rig.scaler.policy = Broken()
    result = rig.scaler.run(once=True)
    assert result.error_kind == "policy" and "ZeroDivisionError" in (result.error or "")


def test_metrics_show_scale_events_replicas_and_pending_deletes(rig: Rig) -> None:
    rig.set_replicas(spot=2)
    rig.idle(600)
    rig.scaler.tick()
    text = rig.scaler.metrics.exposition()
    assert 'tideflow_cluster_scale_events_total{direction="down",pool="spot"} 1.0' in text
    assert 'tideflow_cluster_replicas{pool="spot"} 0.0' in text
    rig.demand.set([CPU8])
    rig.scaler.tick()
    text = rig.scaler.metrics.exposition()
    assert 'tideflow_cluster_scale_events_total{direction="up",pool="online"} 1.0' in text
    assert 'tideflow_cluster_pending_deletes{pool="spot"} 2.0' in text
    assert "tideflow_cluster_ticks_total 2.0" in text
