"""Tideflow on a cluster: the multi-pool policy, KubeRay ``RayCluster`` rendering and the
external autoscaler that patches it (``tideflow-cluster``). Nothing here imports Ray; the
demand reader :class:`RayDemand` does, on first use.
"""

from __future__ import annotations

from tideflow.cluster.autoscale import Autoscaler, Policy, TickResult, default_policy
from tideflow.cluster.config import (
    AutoscalerSettings,
    ClusterConfig,
    HeadSpec,
    KubeSettings,
    PoolSpec,
    config_from_dict,
    load_config,
)
from tideflow.cluster.demand import (
    CombinedDemand,
    Demand,
    DemandReader,
    FileDemand,
    NodeUsage,
    PoolDemand,
    RayDemand,
    StaticDemand,
    demand_from_pool_metrics,
    demand_from_resource_state,
)
from tideflow.cluster.deploy import AUTOSCALER_RULES, render_autoscaler, render_autoscaler_yaml
from tideflow.cluster.errors import (
    ClusterConfigError,
    ClusterError,
    DemandError,
    KubeConflictError,
    KubeError,
    PatchSafetyError,
)
from tideflow.cluster.kube import KubeClient, check_json_patch
from tideflow.cluster.metrics import AutoscalerMetrics, MetricNames
from tideflow.cluster.patches import GroupState, ScaleStep, build_patch, check_patch, observe
from tideflow.cluster.policy import (
    ClusterView,
    GroupChange,
    MultiPoolPolicy,
    PolicyConfig,
    WorkerNode,
)
from tideflow.cluster.render import (
    POOL_LABEL,
    RECLAIM_ANNOTATION,
    TIDAL_LABEL,
    render_raycluster,
    render_yaml,
)

__all__ = [
    # configuration
    "AutoscalerSettings",
    "ClusterConfig",
    "HeadSpec",
    "KubeSettings",
    "PoolSpec",
    "config_from_dict",
    "load_config",
    # rendering
    "POOL_LABEL",
    "RECLAIM_ANNOTATION",
    "TIDAL_LABEL",
    "render_raycluster",
    "render_yaml",
    "render_autoscaler",
    "render_autoscaler_yaml",
    "AUTOSCALER_RULES",
    # Kubernetes API
    "KubeClient",
    "check_json_patch",
    # demand
    "Demand",
    "DemandReader",
    "FileDemand",
    "NodeUsage",
    "RayDemand",
    "PoolDemand",
    "CombinedDemand",
    "StaticDemand",
    "demand_from_resource_state",
    "demand_from_pool_metrics",
    # policy
    "ClusterView",
    "GroupChange",
    "MultiPoolPolicy",
    "PolicyConfig",
    "WorkerNode",
    # autoscaler
    "Autoscaler",
    "GroupState",
    "Policy",
    "ScaleStep",
    "TickResult",
    "build_patch",
    "check_patch",
    "default_policy",
    "observe",
    # metrics
    "AutoscalerMetrics",
    "MetricNames",
    # errors
    "ClusterConfigError",
    "ClusterError",
    "DemandError",
    "KubeConflictError",
    "KubeError",
    "PatchSafetyError",
]
