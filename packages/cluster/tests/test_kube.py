"""The Kubernetes client against the API emulator: reads, RFC 6902 patches, and a token that
never shows in a log line or an error."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from _cluster_data import TOKEN
from _kube_emulator import RAYCLUSTERS, EmulatedKubernetes

from tideflow.cluster import (
    ClusterConfig,
    ClusterConfigError,
    KubeClient,
    KubeConflictError,
    KubeError,
    check_json_patch,
    render_raycluster,
)
from tideflow.cluster.render import worker_selector
from tideflow.core.observability import configure_logging


@pytest.fixture
def client(kube: EmulatedKubernetes, config: ClusterConfig) -> KubeClient:
    kube.put(RAYCLUSTERS, render_raycluster(config))
    return KubeClient(kube.url, token=TOKEN)


def _pod(name: str, group: str, cluster: str = "tideflow") -> dict[str, Any]:
    labels = {"ray.io/cluster": cluster, "ray.io/group": group, "ray.io/node-type": "worker"}
    return {"metadata": {"name": name, "namespace": "ray", "labels": labels}}


def test_get_raycluster_returns_the_object(client: KubeClient) -> None:
    cluster = client.get_raycluster("ray", "tideflow")
    assert [g["groupName"] for g in cluster["spec"]["workerGroupSpecs"]] == [
        "online",
        "batch",
        "spot",
    ]


def test_list_pods_filters_by_label_selector(
    client: KubeClient, kube: EmulatedKubernetes, config: ClusterConfig
) -> None:
    from _kube_emulator import PODS

    for pod in (_pod("a", "online"), _pod("b", "spot"), _pod("c", "spot", cluster="other")):
        kube.put(PODS, pod)
    everyone = client.list_pods("ray", worker_selector(config))
    assert sorted(p["metadata"]["name"] for p in everyone) == ["a", "b"]
    spot = client.list_pods("ray", worker_selector(config, "spot"))
    assert [p["metadata"]["name"] for p in spot] == ["b"]


def test_patch_applies_rfc6902_ops(client: KubeClient) -> None:
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/spec/workerGroupSpecs/2/replicas", "value": 0},
        {"op": "replace", "path": "/spec/workerGroupSpecs/2/replicas", "value": 3},
        {
            "op": "add",
            "path": "/spec/workerGroupSpecs/2/scaleStrategy/workersToDelete/-",
            "value": "p1",
        },
    ]
    after = client.patch_raycluster("ray", "tideflow", ops)
    spot = after["spec"]["workerGroupSpecs"][2]
    assert spot["replicas"] == 3 and spot["scaleStrategy"]["workersToDelete"] == ["p1"]
    assert client.get_raycluster("ray", "tideflow")["spec"]["workerGroupSpecs"][2] == spot


def test_failed_test_op_is_a_conflict_and_changes_nothing(client: KubeClient) -> None:
    ops = [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2},
        {"op": "test", "path": "/spec/workerGroupSpecs/0/replicas", "value": 7},
    ]
    with pytest.raises(KubeConflictError) as info:
        client.patch_raycluster("ray", "tideflow", ops)
    assert info.value.status == 422
    assert client.get_raycluster("ray", "tideflow")["spec"]["workerGroupSpecs"][0]["replicas"] == 0


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "replace", "path": "/spec", "value": 1},
        [{"op": "frobnicate", "path": "/spec"}],
        [{"op": "replace", "path": "spec/replicas", "value": 1}],
        [{"op": "add", "path": "/spec/x"}],
        [{"op": "move", "path": "/spec/x"}],
    ],
    ids=["not-a-list", "unknown-op", "relative-path", "add-without-value", "move-without-from"],
)
def test_invalid_json_patch_is_refused_before_sending(ops: Any) -> None:
    with pytest.raises(ValueError):
        check_json_patch(ops)


def test_missing_object_is_a_kube_error_with_its_status(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        client.get_raycluster("ray", "nope")
    assert info.value.status == 404
    assert "rayclusters/nope" in str(info.value)


def test_unreachable_server_is_a_kube_error() -> None:
    with pytest.raises(KubeError, match="no answer"):
        KubeClient("http://127.0.0.1:9", timeout_s=2).get_raycluster("ray", "x")


def test_token_never_appears_in_logs_errors_or_repr(kube: EmulatedKubernetes) -> None:
    path = "/apis/ray.io/v1/namespaces/ray/rayclusters/echo"
    # A server that echoes the credentials it got back in its error (some proxies do).
    (
        kube.emulator[f"get {path}"]
        << 401
        << (
            lambda request: {
                "kind": "Status",
                "reason": "Unauthorized",
                "message": f"rejected {request.headers.get('Authorization')}",
            }
        )
    )
    log = io.StringIO()
    configure_logging(format="json", level="debug", stream=log)
    client = KubeClient(kube.url, token=TOKEN)
    try:
        with pytest.raises(KubeError) as info:
            client.get_raycluster("ray", "echo")
        client.list_pods("ray", {"a": "b"})
    finally:
        configure_logging(format="json", level="info")
    assert "rejected Bearer ***" in str(info.value)
    assert info.value.status == 401
    for text in (str(info.value), repr(info.value), log.getvalue(), repr(client)):
        assert TOKEN not in text
    assert "kube.requested" in log.getvalue()


def test_token_file_is_read_and_a_missing_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    client = KubeClient.from_files("https://k8s.example:6443", token_file=str(tmp_path / "token"))
    assert TOKEN not in repr(client) and "token=***" in repr(client)
    with pytest.raises(ClusterConfigError, match="token file"):
        KubeClient.from_files("https://k8s.example:6443", token_file=str(tmp_path / "nope"))
