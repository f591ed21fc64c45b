"""Autoscaling: the scaling policy of one actor pool and the multi-pool cluster planner.

Pure logic with an injectable clock, no Ray: a pool reports :class:`UtilizationSample`\\ s, a
:class:`PoolScaler` turns them into :class:`ScaleDecision`\\ s and
:class:`~tideflow.core.observability.ScaleEvent`\\ s; a :class:`ClusterPlanner` turns resource
demand into node counts per :class:`NodePool`.
"""

from __future__ import annotations

from tideflow.core.autoscaler._config import ScalingConfig
from tideflow.core.autoscaler._planner import ClusterPlan, ClusterPlanner, NodePool, PoolPlan
from tideflow.core.autoscaler._policy import DecisionCode, PoolScaler, ScaleDecision
from tideflow.core.autoscaler._samples import UtilizationSample

__all__ = [
    "ClusterPlan",
    "ClusterPlanner",
    "DecisionCode",
    "NodePool",
    "PoolPlan",
    "PoolScaler",
    "ScaleDecision",
    "ScalingConfig",
    "UtilizationSample",
]
