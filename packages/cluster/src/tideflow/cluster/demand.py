"""What the cluster is asked for: pending resource bundles, and what each Ray node uses.

A *demand reader* is any callable returning a :class:`Demand`; the autoscaler calls one per
tick. :class:`RayDemand` reads Ray's GCS autoscaler state (the state Ray's own autoscaler v2
reads: ``ray.autoscaler.v2.sdk.get_cluster_resource_state``); :class:`PoolDemand` reads the
samples of Tideflow jobs' stage pools from their Prometheus endpoints (a stage with work
waiting and room to grow asks for one more actor's bundle before Ray has a request pending);
:class:`FileDemand` reads a JSON/YAML file (an external demand source, or a dry run);
:class:`StaticDemand` is set in code; :class:`CombinedDemand` adds readers up.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from tideflow.cluster.errors import DemandError

__all__ = [
    "CombinedDemand",
    "Demand",
    "DemandReader",
    "PoolDemand",
    "FileDemand",
    "NodeUsage",
    "RayDemand",
    "StaticDemand",
    "demand_from_data",
    "demand_from_pool_metrics",
    "demand_from_resource_state",
]

Resources = Mapping[str, float]


@dataclass(frozen=True, kw_only=True)
class NodeUsage:
    """What one Ray node (a worker pod) uses now."""

    used: Resources = field(default_factory=dict)
    """Resources held by tasks and actors (total − available)."""
    idle_s: float = 0.0
    """Seconds the node has held nothing."""
    draining: bool = False
    """Ray is draining the node (it takes no new work)."""


@dataclass(frozen=True, kw_only=True)
class Demand:
    """Pending resource bundles and per-node usage, keyed by pod name."""

    bundles: tuple[Resources, ...] = ()
    """Resource bundles Ray could not place (each must fit on one node)."""
    nodes: Mapping[str, NodeUsage] = field(default_factory=dict)
    """Usage of each Ray node by its pod name (Ray's cloud instance id under KubeRay)."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "bundles", tuple(types.MappingProxyType(dict(b)) for b in self.bundles)
        )
        object.__setattr__(self, "nodes", types.MappingProxyType(dict(self.nodes)))


class DemandReader(Protocol):
    """Returns the current :class:`Demand`; raises :class:`DemandError` when it cannot."""

    def __call__(self) -> Demand: ...


class StaticDemand:
    """A demand set in code (tests, simulations)."""

    def __init__(self, demand: Demand | None = None) -> None:
        self.demand = demand if demand is not None else Demand()

    def set(self, bundles: Iterable[Resources] = (), **nodes: NodeUsage) -> None:
        """Replace the demand."""
        self.demand = Demand(bundles=tuple(bundles), nodes=nodes)

    def __call__(self) -> Demand:
        return self.demand


def _bundle(value: object, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
        for k, v in value.items()
    ):
        raise DemandError(f"{where} must map resource names to amounts >= 0; got {value!r}")
    return {k: float(v) for k, v in value.items()}


def demand_from_data(data: object, *, where: str = "demand") -> Demand:
    """A :class:`Demand` from plain data: a list of bundles, or
    ``{"bundles": [...], "nodes": {pod: {"used": {...}, "idle_s": s}}}``."""
    if isinstance(data, list):
        data = {"bundles": data}
    if not isinstance(data, Mapping) or set(data) - {"bundles", "nodes"}:
        raise DemandError(
            f"{where} must be a list of bundles or a mapping with 'bundles' and 'nodes'; "
            f"got {str(data)[:200]}"
        )
    bundles = data.get("bundles") or []
    nodes = data.get("nodes") or {}
    if not isinstance(bundles, list) or not isinstance(nodes, Mapping):
        raise DemandError(f"{where}: 'bundles' must be a list and 'nodes' a mapping")
    usage = {}
    for pod, node in nodes.items():
        if not isinstance(node, Mapping):
            raise DemandError(f"{where}: nodes[{pod!r}] must be a mapping; got {node!r}")
        usage[str(pod)] = NodeUsage(
            used=_bundle(node.get("used", {}), f"{where}: nodes[{pod!r}].used"),
            idle_s=float(node.get("idle_s", 0.0)),
            draining=bool(node.get("draining", False)),
        )
    return Demand(
        bundles=tuple(_bundle(b, f"{where}: bundles[{i}]") for i, b in enumerate(bundles)),
        nodes=usage,
    )


class FileDemand:
    """Reads the demand from a JSON or YAML file at every call (see :func:`demand_from_data`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __call__(self) -> Demand:
        try:
            text = self.path.read_text(encoding="utf-8")
            data = json.loads(text) if self.path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise DemandError(f"cannot read the demand file {str(self.path)!r}: {e}") from None
        return demand_from_data(data, where=str(self.path))


def _expand(requests: Iterable[Any], bundles: list[dict[str, float]]) -> None:
    for by_count in requests:
        bundle = {k: float(v) for k, v in by_count.request.resources_bundle.items() if v > 0}
        bundles.extend(dict(bundle) for _ in range(by_count.count))


def demand_from_resource_state(state: Any) -> Demand:
    """A :class:`Demand` from Ray's ``autoscaler_pb2.ClusterResourceState``.

    Bundles are the pending resource requests (by count), the bundles of pending gang requests
    (placement groups) and the cluster resource constraints (``ray.autoscaler.sdk.
    request_resources``). Node usage comes from the live node states, keyed by ``instance_id``
    (the pod name under KubeRay); dead nodes are left out."""
    bundles: list[dict[str, float]] = []
    _expand(state.pending_resource_requests, bundles)
    for gang in state.pending_gang_resource_requests:
        for request in gang.requests:
            bundles.append({k: float(v) for k, v in request.resources_bundle.items() if v > 0})
    for constraint in state.cluster_resource_constraints:
        _expand(constraint.resource_requests, bundles)
    nodes: dict[str, NodeUsage] = {}
    dead, draining = 2, 4  # autoscaler_pb2.NodeStatus.DEAD / DRAINING
    for node in state.node_states:
        if node.status == dead or not node.instance_id:
            continue
        total, free = dict(node.total_resources), dict(node.available_resources)
        nodes[node.instance_id] = NodeUsage(
            used={k: max(0.0, v - free.get(k, 0.0)) for k, v in total.items()},
            idle_s=node.idle_duration_ms / 1000.0,
            draining=node.status == draining,
        )
    return Demand(bundles=tuple(bundles), nodes=nodes)


class RayDemand:
    """Reads pending demand and node usage from a running Ray cluster's GCS.

    ``address`` is the GCS address (``head-svc:6379``). The GCS client is made on first use,
    so constructing a reader connects to nothing."""

    def __init__(self, address: str) -> None:
        if not address:
            raise DemandError("RayDemand needs the GCS address (host:port); got ''")
        self.address = address
        self._client: Any = None

    def __call__(self) -> Demand:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]  # Ray costs seconds
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        try:
            if self._client is None:
                self._client = GcsClient(address=self.address)
            state = get_cluster_resource_state(self._client)
        except Exception as e:  # the GCS client raises RpcError, RuntimeError, …
            self._client = None
            message = f"cannot read the cluster resource state from GCS {self.address}: {e}"
            raise DemandError(message) from None
        return demand_from_resource_state(state)


def demand_from_pool_metrics(text: str) -> Demand:
    """The bundles Tideflow's stage pools want, from a job's Prometheus exposition.

    A stage whose pool has work waiting (``tideflow_pool_queued_work`` > 0) and fewer actors
    than its maximum (``tideflow_pool_actors`` < ``tideflow_pool_max_actors``) wants one more
    actor: one bundle of ``tideflow_pool_actor_resources``. One per stage and reading — the
    pool grows one step at a time, and the policy's windows smooth the rest."""
    from prometheus_client.parser import text_string_to_metric_families

    by_stage: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if "job" not in labels or "stage" not in labels:
                    continue
                stage = by_stage.setdefault((labels["job"], labels["stage"]), {"bundle": {}})
                if sample.name == "tideflow_pool_actor_resources" and "resource" in labels:
                    stage["bundle"][labels["resource"]] = float(sample.value)
                elif sample.name in _POOL_GAUGES:
                    stage[_POOL_GAUGES[sample.name]] = float(sample.value)
    except ValueError as e:
        raise DemandError(f"not a Prometheus exposition: {e}") from None
    bundles = [
        dict(stage["bundle"])
        for stage in by_stage.values()
        if stage.get("queued", 0) > 0
        and stage.get("actors", 0) < stage.get("max_actors", 0)
        and stage["bundle"]
    ]
    return Demand(bundles=tuple(bundles))


_POOL_GAUGES = {
    "tideflow_pool_queued_work": "queued",
    "tideflow_pool_actors": "actors",
    "tideflow_pool_max_actors": "max_actors",
}


class PoolDemand:
    """Reads what Tideflow jobs' stage pools want from their metrics endpoints
    (``Pipeline.run(..., metrics_port=…)`` serves ``http://host:port/metrics``); see
    :func:`demand_from_pool_metrics`."""

    def __init__(self, urls: Iterable[str], *, timeout_s: float = 5.0) -> None:
        self.urls = [str(u) for u in urls]
        bad = [u for u in self.urls if not u.startswith(("http://", "https://"))]
        if not self.urls or bad:
            raise DemandError(
                f"PoolDemand needs http(s) URLs of jobs' /metrics endpoints; got {self.urls!r}"
            )
        if timeout_s <= 0:
            raise DemandError(f"PoolDemand timeout_s must be > 0; got {timeout_s}")
        self.timeout_s = timeout_s

    def __call__(self) -> Demand:
        import urllib.request

        bundles: list[Resources] = []
        for url in self.urls:
            try:
                with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                    text = response.read().decode("utf-8")
            except OSError as e:
                raise DemandError(f"cannot read pool metrics from {url}: {e}") from None
            bundles += demand_from_pool_metrics(text).bundles
        return Demand(bundles=tuple(bundles))


class CombinedDemand:
    """The demand of several readers added up: their bundles together, and node usage
    from each (a later reader's entry for the same pod wins)."""

    def __init__(self, *readers: DemandReader) -> None:
        if not readers:
            raise DemandError("CombinedDemand needs at least one demand reader")
        self.readers = readers

    def __call__(self) -> Demand:
        bundles: list[Resources] = []
        nodes: dict[str, NodeUsage] = {}
        for reader in self.readers:
            demand = reader()
            bundles += demand.bundles
            nodes.update(demand.nodes)
        return Demand(bundles=tuple(bundles), nodes=nodes)
