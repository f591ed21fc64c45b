"""Render what runs ``tideflow-cluster autoscale`` inside the cluster it scales.

Five objects in the RayCluster's namespace: a ``ServiceAccount``; a ``Role`` that may do what
the autoscaler does and nothing else (``get`` and ``patch`` the ``rayclusters.ray.io``,
``list`` the ``pods``); its ``RoleBinding``; a ``ConfigMap`` holding the configuration file as
written; and a one-replica ``Deployment`` (``strategy: Recreate``: two autoscalers must never
patch one cluster at once) whose container runs ``tideflow-cluster autoscale`` on it with
Prometheus metrics on a port. The image must have ``tideflow-cluster`` installed (the default,
the configuration's Ray image, does not: pass ``image``).

>>> docs = render_autoscaler(config, config_text=open("cluster.yaml").read(),
...                          image="registry.example/tideflow-cluster:0.1")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import yaml

from tideflow.cluster.config import ClusterConfig
from tideflow.cluster.errors import ClusterConfigError

__all__ = ["AUTOSCALER_RULES", "render_autoscaler", "render_autoscaler_yaml"]

AUTOSCALER_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
)
"""The Role's rules: exactly the API calls one autoscaler tick makes."""

_CONFIG_KEY = "cluster.yaml"
_MOUNT = "/etc/tideflow"


def render_autoscaler(
    config: ClusterConfig,
    *,
    config_text: str,
    image: str | None = None,
    metrics_port: int = 9100,
) -> list[dict[str, Any]]:
    """The ServiceAccount, Role, RoleBinding, ConfigMap and Deployment (in this order) that
    run the autoscaler of ``config`` in its namespace; ``config_text`` is the configuration
    file the container reads (mounted from the ConfigMap)."""
    if not config_text.strip():
        raise ClusterConfigError("render_autoscaler: config_text is empty; pass the file's text")
    if isinstance(metrics_port, bool) or not 1 <= metrics_port <= 65535:
        raise ClusterConfigError(
            f"render_autoscaler: metrics_port must be a port 1..65535; got {metrics_port!r}"
        )
    name = f"{config.name}-autoscaler"
    namespace = config.namespace
    labels = {"app.kubernetes.io/name": "tideflow-cluster", "ray.io/cluster": config.name}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    # KubeRay's head service is <cluster>-head-svc; the GCS listens on 6379.
    address = (
        config.autoscaler.ray_address
        or f"{config.name}-head-svc.{namespace}.svc.cluster.local:6379"
    )
    args = [
        "--log-format",
        "json",
        "autoscale",
        "--config",
        f"{_MOUNT}/{_CONFIG_KEY}",
        "--ray-address",
        address,
        "--metrics-port",
        str(metrics_port),
    ]
    container = {
        "name": "autoscaler",
        "image": image or config.image,
        "command": ["tideflow-cluster"],
        "args": args,
        "ports": [{"name": "metrics", "containerPort": metrics_port}],
        "volumeMounts": [{"name": "config", "mountPath": _MOUNT, "readOnly": True}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # never two autoscalers patching at once
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": name}}],
                },
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [dict(rule) for rule in AUTOSCALER_RULES],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {_CONFIG_KEY: config_text},
        },
        deployment,
    ]


def render_autoscaler_yaml(
    config: ClusterConfig, *, config_text: str, image: str | None = None, metrics_port: int = 9100
) -> str:
    """:func:`render_autoscaler` as a multi-document YAML stream."""
    docs = render_autoscaler(
        config, config_text=config_text, image=image, metrics_port=metrics_port
    )
    return yaml.safe_dump_all(docs, sort_keys=False)
