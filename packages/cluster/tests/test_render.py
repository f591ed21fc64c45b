"""Rendering: every RayCluster validates against the CRD schema; one worker group per pool."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from _cluster_data import CONFIG
from _raycluster_crd import crd_errors

from tideflow.cluster import ClusterConfig, config_from_dict, render_raycluster, render_yaml

FULL = {
    **CONFIG,
    "image": "example.com/tideflow:1",
    "head": {
        "cpu": "4",
        "memory": "16Gi",
        "node_selector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "pools": [
        {
            "name": "gpu",
            "node_shape": {"CPU": 16, "GPU": 2, "memory": "128Gi", "accel_a100": 2},
            "min_nodes": 1,
            "max_nodes": 4,
            "priority": 50,
            "labels": {"team": "search", "tier": "online"},
            "ray_resources": {"vram_gb": 160},
            "ray_start_params": {"object-store-memory": "20000000000"},
            "image": "example.com/tideflow-gpu:1",
            "node_selector": {"cloud.google.com/gke-nodepool": "gpu"},
            "idle_timeout_s": 120,
        },
        {
            "name": "spot",
            "node_shape": {"CPU": 8, "memory": "32Gi"},
            "max_nodes": 10,
            "tidal": True,
            "node_selector": {"cloud.google.com/gke-spot": "true"},
            "tolerations": [
                {
                    "key": "cloud.google.com/gke-spot",
                    "operator": "Equal",
                    "value": "true",
                    "effect": "NoSchedule",
                }
            ],
            "container_resources": {"requests": {"cpu": "7500m", "memory": "30Gi"}},
        },
    ],
}
MINIMAL = {"name": "c", "pools": [{"name": "w", "node_shape": {"CPU": 1}, "max_nodes": 1}]}


@pytest.mark.parametrize("data", [CONFIG, FULL, MINIMAL], ids=["tests", "full", "minimal"])
def test_rendered_raycluster_validates_against_the_crd(data: dict[str, Any]) -> None:
    assert crd_errors(render_raycluster(config_from_dict(data))) == []


def test_the_crd_check_catches_a_broken_raycluster() -> None:
    cluster = render_raycluster(config_from_dict(FULL))
    broken = copy.deepcopy(cluster)
    broken["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    broken["spec"]["workerGroupSpecs"][1]["scaleStrategy"]["workersToDelete"] = [3]
    broken["spec"]["headGroupSpec"]["rayStartparams"] = {}
    errors = crd_errors(broken)
    assert any("workerGroupSpecs/0/replicas" in e for e in errors)
    assert any("workersToDelete/0" in e for e in errors)
    assert any("rayStartparams" in e for e in errors)


def _groups(config: ClusterConfig) -> dict[str, dict[str, Any]]:
    return {g["groupName"]: g for g in render_raycluster(config)["spec"]["workerGroupSpecs"]}


def test_each_pool_becomes_a_worker_group_with_its_bounds_and_priority() -> None:
    groups = _groups(config_from_dict(FULL))
    assert list(groups) == ["gpu", "spot"]
    gpu = groups["gpu"]
    assert (gpu["replicas"], gpu["minReplicas"], gpu["maxReplicas"]) == (1, 1, 4)
    assert gpu["priority"] == 50
    assert gpu["idleTimeoutSeconds"] == 120
    assert gpu["scaleStrategy"] == {"workersToDelete": []}


def test_ray_resources_and_labels_go_to_ray_start_params() -> None:
    params = _groups(config_from_dict(FULL))["gpu"]["rayStartParams"]
    assert json.loads(params["resources"]) == {"accel_a100": 2, "vram_gb": 160}
    labels = dict(kv.split("=") for kv in params["labels"].split(","))
    assert labels == {
        "tideflow.io/pool": "gpu",
        "tideflow.io/tidal": "false",
        "team": "search",
        "tier": "online",
    }
    assert params["object-store-memory"] == "20000000000"


def test_tidal_pool_is_marked_on_its_pods_and_ray_nodes() -> None:
    spot = _groups(config_from_dict(FULL))["spot"]
    assert spot["template"]["metadata"]["labels"]["tideflow.io/tidal"] == "true"
    assert "tideflow.io/tidal=true" in spot["rayStartParams"]["labels"]
    gpu = _groups(config_from_dict(FULL))["gpu"]
    assert gpu["template"]["metadata"]["labels"]["tideflow.io/tidal"] == "false"


def test_pod_template_has_the_pools_placement_image_and_resources() -> None:
    groups = _groups(config_from_dict(FULL))
    gpu, spot = groups["gpu"]["template"]["spec"], groups["spot"]["template"]["spec"]
    assert gpu["nodeSelector"] == {"cloud.google.com/gke-nodepool": "gpu"}
    assert "tolerations" not in gpu
    assert spot["tolerations"][0]["key"] == "cloud.google.com/gke-spot"
    (container,) = gpu["containers"]
    assert container["image"] == "example.com/tideflow-gpu:1"
    assert container["resources"]["limits"] == {
        "cpu": "16",
        "memory": "128Gi",
        "nvidia.com/gpu": "2",
    }
    assert spot["containers"][0]["image"] == "example.com/tideflow:1"
    assert spot["containers"][0]["resources"] == {"requests": {"cpu": "7500m", "memory": "30Gi"}}


def test_in_tree_autoscaling_is_off_and_the_head_takes_no_work() -> None:
    cluster = render_raycluster(config_from_dict(FULL))
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    assert cluster["spec"]["enableInTreeAutoscaling"] is False
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["template"]["spec"]["nodeSelector"] == {"pool": "system"}


def test_yaml_is_the_same_object() -> None:
    import yaml

    config = config_from_dict(FULL)
    assert yaml.safe_load(render_yaml(config)) == render_raycluster(config)
