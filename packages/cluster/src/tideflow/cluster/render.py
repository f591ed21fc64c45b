"""Render a :class:`~tideflow.cluster.config.ClusterConfig` as a KubeRay ``ray.io/v1``
``RayCluster``: one worker group per node pool.

Each group carries the pool's ``minReplicas``/``maxReplicas``/``priority``, its Ray resources
(``rayStartParams.resources``, JSON) and Ray node labels (``rayStartParams.labels``,
``k=v,…``), the pods' ``nodeSelector`` and ``tolerations``, and the pool markers as pod labels:
``tideflow.io/pool`` and ``tideflow.io/tidal`` (``"true"``/``"false"``). In-tree autoscaling is
off: ``tideflow-cluster autoscale`` owns ``replicas`` and ``scaleStrategy.workersToDelete``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from tideflow.cluster.config import ClusterConfig, HeadSpec, PoolSpec

__all__ = [
    "GROUP_LABEL",
    "CLUSTER_LABEL",
    "NODE_TYPE_LABEL",
    "POOL_LABEL",
    "TIDAL_LABEL",
    "RECLAIM_ANNOTATION",
    "render_raycluster",
    "render_yaml",
    "worker_selector",
]

CLUSTER_LABEL = "ray.io/cluster"
"""Set by KubeRay on every pod of a RayCluster: the cluster's name."""
GROUP_LABEL = "ray.io/group"
"""Set by KubeRay on every pod: its worker group's name (``headgroup`` for the head)."""
NODE_TYPE_LABEL = "ray.io/node-type"
"""Set by KubeRay on every pod: ``head`` or ``worker``."""
POOL_LABEL = "tideflow.io/pool"
"""Our pod and Ray node label: the node pool's name."""
TIDAL_LABEL = "tideflow.io/tidal"
"""Our pod and Ray node label: ``"true"`` on pods of tidal (preemptible spare) pools."""
RECLAIM_ANNOTATION = "tideflow.io/reclaim-notice"
"""Set on a pod (by a node-termination handler) when its node will be reclaimed shortly."""

_BUILTIN = {"CPU", "GPU", "memory", "object_store_memory"}


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _bytes(value: float) -> str:
    n = int(value)
    for suffix, unit in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def _quantity(value: float) -> str:
    return str(_number(value))


def worker_selector(config: ClusterConfig, group: str | None = None) -> dict[str, str]:
    """The label selector of the cluster's worker pods (of one group when ``group`` is set)."""
    selector = {CLUSTER_LABEL: config.name, NODE_TYPE_LABEL: "worker"}
    if group is not None:
        selector[GROUP_LABEL] = group
    return selector


def _ray_resources(pool: PoolSpec) -> dict[str, int | float]:
    custom = {k: v for k, v in pool.node_shape.items() if k not in _BUILTIN and v > 0}
    custom.update(pool.ray_resources)
    return {k: _number(v) for k, v in sorted(custom.items())}


def _ray_labels(pool: PoolSpec) -> dict[str, str]:
    return {POOL_LABEL: pool.name, TIDAL_LABEL: str(pool.tidal).lower(), **pool.labels}


def _container_resources(pool: PoolSpec) -> dict[str, Any]:
    if pool.container_resources is not None:
        return json.loads(json.dumps(dict(pool.container_resources)))
    shape = pool.node_shape
    amounts: dict[str, str] = {}
    if shape.get("CPU", 0) > 0:
        amounts["cpu"] = _quantity(shape["CPU"])
    if shape.get("memory", 0) > 0:
        amounts["memory"] = _bytes(shape["memory"])
    if shape.get("GPU", 0) > 0:
        amounts[pool.gpu_resource_name] = str(int(shape["GPU"]))
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _pod_template(
    *,
    container: str,
    image: str,
    resources: Mapping[str, Any],
    labels: Mapping[str, str],
    node_selector: Mapping[str, str],
    tolerations: tuple[Mapping[str, Any], ...],
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": container,
        "image": image,
        "resources": dict(resources),
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}},
    }
    if ports:
        body["ports"] = ports
    spec: dict[str, Any] = {"containers": [body]}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    if labels:
        return {"metadata": {"labels": dict(labels)}, "spec": spec}
    return {"spec": spec}


def _worker_group(config: ClusterConfig, pool: PoolSpec) -> dict[str, Any]:
    params: dict[str, str] = dict(pool.ray_start_params)
    resources = _ray_resources(pool)
    if resources:
        params["resources"] = json.dumps(resources, separators=(",", ":"))
    params["labels"] = ",".join(f"{k}={v}" for k, v in _ray_labels(pool).items())
    group: dict[str, Any] = {
        "groupName": pool.name,
        "replicas": pool.min_nodes,
        "minReplicas": pool.min_nodes,
        "maxReplicas": pool.max_nodes,
        "priority": pool.priority,
        "rayStartParams": params,
        "scaleStrategy": {"workersToDelete": []},
        "template": _pod_template(
            container="ray-worker",
            image=pool.image or config.image,
            resources=_container_resources(pool),
            labels={**pool.labels, POOL_LABEL: pool.name, TIDAL_LABEL: str(pool.tidal).lower()},
            node_selector=pool.node_selector,
            tolerations=pool.tolerations,
        ),
    }
    if pool.idle_timeout_s is not None:
        group["idleTimeoutSeconds"] = pool.idle_timeout_s
    return group


def _head_group(config: ClusterConfig, head: HeadSpec) -> dict[str, Any]:
    amounts = {"cpu": head.cpu, "memory": head.memory}
    return {
        "rayStartParams": dict(head.ray_start_params),
        "template": _pod_template(
            container="ray-head",
            image=head.image or config.image,
            resources={"requests": dict(amounts), "limits": dict(amounts)},
            labels={},
            node_selector=head.node_selector,
            tolerations=head.tolerations,
            ports=[
                {"containerPort": 6379, "name": "gcs-server"},
                {"containerPort": 8265, "name": "dashboard"},
                {"containerPort": 10001, "name": "client"},
            ],
        ),
    }


def render_raycluster(config: ClusterConfig) -> dict[str, Any]:
    """The ``RayCluster`` object for ``config``: plain JSON-compatible data."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {
            "name": config.name,
            "namespace": config.namespace,
            "labels": {"app.kubernetes.io/managed-by": "tideflow-cluster"},
            "annotations": {"tideflow.io/autoscaler": "external"},
        },
        "spec": {
            "rayVersion": config.ray_version,
            "enableInTreeAutoscaling": False,
            "headGroupSpec": _head_group(config, config.head),
            "workerGroupSpecs": [_worker_group(config, pool) for pool in config.pools],
        },
    }


def render_yaml(config: ClusterConfig) -> str:
    """:func:`render_raycluster` as a YAML document (key order kept)."""
    return yaml.safe_dump(render_raycluster(config), sort_keys=False, default_flow_style=False)
