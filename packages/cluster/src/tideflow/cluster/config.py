"""The cluster configuration: the RayCluster, its head, its node pools, the policy and the
Kubernetes connection. Frozen keyword-only dataclasses, validated on construction; a file
(YAML or JSON) is read with :func:`load_config`.

Every error names the field (``pools[1].max_nodes``), what is allowed and what was seen.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tideflow.cluster.errors import ClusterConfigError
from tideflow.core.autoscaler import NodePool
from tideflow.core.errors import ConfigError

__all__ = [
    "AutoscalerSettings",
    "ClusterConfig",
    "HeadSpec",
    "KubeSettings",
    "PoolSpec",
    "config_from_dict",
    "load_config",
    "parse_quantity",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_SUFFIX: dict[str | None, float] = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    **{s: 1024.0 ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def _fail(where: str, allowed: str, seen: object) -> ClusterConfigError:
    return ClusterConfigError(f"{where} must be {allowed}; got {seen!r}")


def parse_quantity(value: object, *, where: str = "quantity") -> float:
    """A number, or a Kubernetes quantity string (``"500m"``, ``"64Gi"``, ``"1e9"``) as a float."""
    if isinstance(value, bool):
        raise _fail(where, "a number >= 0 or a Kubernetes quantity such as '64Gi'", value)
    if isinstance(value, int | float):
        if value < 0:
            raise _fail(where, "a number >= 0", value)
        return float(value)
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if match is None:
        raise _fail(where, "a number >= 0 or a Kubernetes quantity such as '64Gi'", value)
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def _dns_label(where: str, value: object, *, max_len: int = 63) -> str:
    if not isinstance(value, str) or not _DNS_LABEL.match(value) or len(value) > max_len:
        raise _fail(
            where, f"a DNS-1123 label (lower-case letters, digits, '-'; <= {max_len} chars)", value
        )
    return value


def _str_map(where: str, value: object, *, labels: bool = False) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail(where, "a mapping of strings to strings", value)
    out: dict[str, str] = {}
    for k, raw in value.items():
        v = raw
        if isinstance(raw, bool | int | float) and not labels:
            v = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if not isinstance(v, str):
            raise _fail(f"{where}[{k!r}]", "a string", raw)
        if labels and not (_LABEL_KEY.match(k) and _LABEL_VALUE.match(v)):
            raise _fail(
                f"{where}[{k!r}]", "a Kubernetes label (key [prefix/]name, value <= 63 chars)", v
            )
        out[k] = v
    return types.MappingProxyType(out)


def _non_negative(where: str, value: object, *, integer: bool = False) -> None:
    kinds: tuple[type[int] | type[float], ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or float(value) < 0:
        raise _fail(where, "an integer >= 0" if integer else "a number >= 0", value)


def _mapping_tuple(where: str, value: object) -> tuple[Mapping[str, Any], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _fail(where, "a list of mappings", value)
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise _fail(f"{where}[{i}]", "a mapping", item)
    return tuple(types.MappingProxyType(dict(item)) for item in value)


@dataclass(frozen=True, kw_only=True)
class PoolSpec:
    """One node pool: a KubeRay worker group whose pods each fill one node of the pool."""

    name: str
    """The pool's name, also the worker group's ``groupName`` (a DNS-1123 label)."""
    node_shape: Mapping[str, float]
    """Resources of one node (Ray names: ``CPU``, ``GPU``, ``memory`` in bytes, custom ones);
    amounts may be Kubernetes quantities (``"64Gi"``)."""
    max_nodes: int
    """Most pods (nodes) the group may have: ``maxReplicas``."""
    min_nodes: int = 0
    """Pods the group always keeps: ``minReplicas``."""
    priority: int = 0
    """Higher priority pools receive new demand first (the group's ``priority``)."""
    tidal: bool = False
    """Preemptible spare capacity, reclaimed at short notice and released first."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of the pool's pods and of its Ray nodes (``ray start --labels``)."""
    ray_resources: Mapping[str, float] = field(default_factory=dict)
    """Custom Ray resources each node advertises besides the custom ones in ``node_shape``."""
    ray_start_params: Mapping[str, str] = field(default_factory=dict)
    """Further ``rayStartParams`` of the group (strings)."""
    image: str | None = None
    """Container image of the pool's pods; the cluster's ``image`` when unset."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """The pods' ``nodeSelector``: which Kubernetes nodes form the pool."""
    tolerations: tuple[Mapping[str, Any], ...] = ()
    """The pods' ``tolerations`` (Kubernetes objects, e.g. for a spot taint)."""
    container_resources: Mapping[str, Any] | None = None
    """The container's ``resources`` (requests/limits); derived from ``node_shape`` if unset."""
    gpu_resource_name: str = "nvidia.com/gpu"
    """The extended resource that ``GPU`` of the shape becomes in the container's limits."""
    idle_timeout_s: int | None = None
    """The group's ``idleTimeoutSeconds`` (read by KubeRay's in-tree autoscaler v2 only)."""

    def __post_init__(self) -> None:
        where = f"pool {self.name!r}"
        _dns_label("PoolSpec.name", self.name)
        if not isinstance(self.node_shape, Mapping) or not self.node_shape:
            raise _fail(f"{where}: node_shape", "a non-empty mapping of resources", self.node_shape)
        shape = {
            str(k): parse_quantity(v, where=f"{where}: node_shape[{k!r}]")
            for k, v in self.node_shape.items()
        }
        object.__setattr__(self, "node_shape", types.MappingProxyType(shape))
        for name in ("min_nodes", "max_nodes", "priority"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(f"{where}: {name}", "an integer", value)
        if not -(2**31) <= self.priority < 2**31:
            raise _fail(f"{where}: priority", "an int32", self.priority)
        if not isinstance(self.tidal, bool):
            raise _fail(f"{where}: tidal", "true or false", self.tidal)
        object.__setattr__(self, "labels", _str_map(f"{where}: labels", self.labels, labels=True))
        extra = {}
        for k, v in dict(self.ray_resources).items():
            _non_negative(f"{where}: ray_resources[{k!r}]", v)
            extra[str(k)] = float(v)
        object.__setattr__(self, "ray_resources", types.MappingProxyType(extra))
        params = _str_map(f"{where}: ray_start_params", self.ray_start_params)
        object.__setattr__(self, "ray_start_params", params)
        object.__setattr__(
            self, "node_selector", _str_map(f"{where}: node_selector", self.node_selector)
        )
        object.__setattr__(
            self, "tolerations", _mapping_tuple(f"{where}: tolerations", self.tolerations)
        )
        if self.image is not None and (not isinstance(self.image, str) or not self.image):
            raise _fail(f"{where}: image", "a non-empty string or unset", self.image)
        if self.container_resources is not None and not isinstance(
            self.container_resources, Mapping
        ):
            raise _fail(f"{where}: container_resources", "a mapping", self.container_resources)
        if self.idle_timeout_s is not None:
            _non_negative(f"{where}: idle_timeout_s", self.idle_timeout_s, integer=True)
        try:
            self.node_pool()  # min/max/shape rules are NodePool's
        except ConfigError as e:
            raise ClusterConfigError(f"{where}: {e}") from None

    def node_pool(self) -> NodePool:
        """The planner's view of this pool."""
        return NodePool(
            name=self.name,
            node_shape=self.node_shape,
            max_nodes=self.max_nodes,
            min_nodes=self.min_nodes,
            priority=self.priority,
            tidal=self.tidal,
        )


@dataclass(frozen=True, kw_only=True)
class HeadSpec:
    """The head pod. By default it offers no CPUs to Ray, so no work lands on it."""

    cpu: str = "2"
    """The head container's CPU request and limit (a Kubernetes quantity)."""
    memory: str = "8Gi"
    """The head container's memory request and limit (a Kubernetes quantity)."""
    image: str | None = None
    """Container image; the cluster's ``image`` when unset."""
    ray_start_params: Mapping[str, str] = field(
        default_factory=lambda: {"num-cpus": "0", "dashboard-host": "0.0.0.0"}
    )
    """The head's ``rayStartParams``."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """The head pod's ``nodeSelector``."""
    tolerations: tuple[Mapping[str, Any], ...] = ()
    """The head pod's ``tolerations``."""

    def __post_init__(self) -> None:
        for name in ("cpu", "memory"):
            parse_quantity(getattr(self, name), where=f"head.{name}")
            object.__setattr__(self, name, str(getattr(self, name)))
        object.__setattr__(
            self, "ray_start_params", _str_map("head.ray_start_params", self.ray_start_params)
        )
        object.__setattr__(
            self, "node_selector", _str_map("head.node_selector", self.node_selector)
        )
        object.__setattr__(
            self, "tolerations", _mapping_tuple("head.tolerations", self.tolerations)
        )


@dataclass(frozen=True, kw_only=True)
class KubeSettings:
    """How to reach the Kubernetes API. Unset fields are filled by the CLI from the in-cluster
    service account (``KUBERNETES_SERVICE_HOST``, the mounted token and CA)."""

    server: str | None = None
    """API server URL, e.g. ``https://10.0.0.1:443``."""
    token_file: str | None = None
    """File holding the bearer token (read at start; the token is never logged)."""
    ca_file: str | None = None
    """CA bundle that signs the API server's certificate."""
    verify_tls: bool = True
    """Verify the server's certificate (turn off only against a local emulator)."""
    timeout_s: float = 10.0
    """Timeout of one API call."""

    def __post_init__(self) -> None:
        if self.server is not None and not re.match(r"^https?://", str(self.server)):
            raise _fail("kube.server", "an http:// or https:// URL", self.server)
        if not isinstance(self.verify_tls, bool):
            raise _fail("kube.verify_tls", "true or false", self.verify_tls)
        _non_negative("kube.timeout_s", self.timeout_s)


@dataclass(frozen=True, kw_only=True)
class AutoscalerSettings:
    """The external autoscaler's loop."""

    interval_s: float = 10.0
    """Seconds between ticks."""
    ray_address: str | None = None
    """GCS address (``host:6379``) to read pending demand from; the CLI's ``--ray-address`` or
    ``RAY_ADDRESS`` when unset."""

    def __post_init__(self) -> None:
        if isinstance(self.interval_s, bool) or not isinstance(self.interval_s, int | float):
            raise _fail("autoscaler.interval_s", "a number > 0", self.interval_s)
        if self.interval_s <= 0:
            raise _fail("autoscaler.interval_s", "a number > 0", self.interval_s)


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """A RayCluster of several node pools and its external autoscaler."""

    name: str
    """The RayCluster's name (a DNS-1123 label)."""
    pools: tuple[PoolSpec, ...]
    """The node pools, one worker group each; names unique."""
    namespace: str = "default"
    """The RayCluster's namespace."""
    image: str = "rayproject/ray:2.60.0-py311"
    """Default container image of the head and the pools."""
    ray_version: str = "2.60.0"
    """The RayCluster's ``rayVersion``."""
    head: HeadSpec = field(default_factory=HeadSpec)
    """The head pod."""
    policy: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of :class:`tideflow.cluster.policy.PolicyConfig`."""
    autoscaler: AutoscalerSettings = field(default_factory=AutoscalerSettings)
    """The autoscaler loop's settings."""
    kube: KubeSettings = field(default_factory=KubeSettings)
    """How to reach the Kubernetes API."""

    def __post_init__(self) -> None:
        _dns_label("ClusterConfig.name", self.name, max_len=47)
        _dns_label("ClusterConfig.namespace", self.namespace)
        if not isinstance(self.pools, tuple) or not self.pools:
            raise _fail("pools", "a non-empty list of pools", self.pools)
        names = [p.name for p in self.pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _fail("pools", f"pools with unique names (repeated: {dupes})", names)
        if not isinstance(self.policy, Mapping):
            raise _fail("policy", "a mapping of PolicyConfig fields", self.policy)
        object.__setattr__(self, "policy", types.MappingProxyType(dict(self.policy)))

    def pool(self, name: str) -> PoolSpec:
        """The pool called ``name``."""
        for p in self.pools:
            if p.name == name:
                return p
        raise ClusterConfigError(f"no pool {name!r}; known: {[p.name for p in self.pools]}")

    def node_pools(self) -> tuple[NodePool, ...]:
        """The planner's view of the pools, in configuration order."""
        return tuple(p.node_pool() for p in self.pools)


_T = TypeVar("_T")


def _build(cls: type[_T], data: object, where: str) -> _T:
    if not isinstance(data, Mapping):
        raise _fail(where, f"a mapping of {cls.__name__} fields", data)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ClusterConfigError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    missing = sorted(
        n
        for n, f in fields.items()
        if n not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ClusterConfigError(f"{where}: missing required field(s) {missing}")
    kwargs = dict(data)
    if "tolerations" in kwargs:
        kwargs["tolerations"] = _mapping_tuple(f"{where}.tolerations", kwargs["tolerations"])
    try:
        return cls(**kwargs)
    except (ConfigError, TypeError, ValueError) as e:
        raise ClusterConfigError(f"{where}: {e}") from None


def config_from_dict(data: object, *, source: str = "configuration") -> ClusterConfig:
    """Build a :class:`ClusterConfig` from plain data (what a YAML or JSON file holds)."""
    if not isinstance(data, Mapping):
        raise _fail(source, "a mapping with 'name' and 'pools'", data)
    raw = dict(data)
    pools = raw.get("pools")
    if isinstance(pools, str | bytes) or not isinstance(pools, Sequence) or not pools:
        raise _fail(f"{source}: pools", "a non-empty list of pools", pools)
    raw["pools"] = tuple(_build(PoolSpec, p, f"{source}: pools[{i}]") for i, p in enumerate(pools))
    for key, cls in (
        ("head", HeadSpec),
        ("autoscaler", AutoscalerSettings),
        ("kube", KubeSettings),
    ):
        if key in raw:
            raw[key] = _build(cls, raw[key], f"{source}: {key}")
    return _build(ClusterConfig, raw, source)


def load_config(path: str | Path) -> ClusterConfig:
    """Read a configuration file: YAML (``.yaml``/``.yml``) or JSON (``.json``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ClusterConfigError(f"cannot read the configuration file {str(p)!r}: {e}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ClusterConfigError(
            f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}"
        ) from None
    return config_from_dict(data, source=str(p))
