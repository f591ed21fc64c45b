"""Tideflow core: the primitives the streaming engine and the RL trainer share.

* :mod:`tideflow.core.checkpoint` — durable checkpoints over any ``pyarrow.fs`` URI, the
  epoch coordinator (in-order completion, two-phase callbacks) and record-level acks.
* :mod:`tideflow.core.autoscaler` — the windowed, debounced scaling policy of one pool and
  the multi-pool cluster planner (tidal pools released first).
* :mod:`tideflow.core.scheduler` — an elastic actor pool over Ray: priorities, least-loaded
  dispatch, retry of work whose actor died, resize without losing work.
* :mod:`tideflow.core.observability` — structlog set-up, event types, metric names.

The most used names are re-exported here; each submodule's ``__all__`` has the rest.
The names load on first use (:mod:`tideflow.core.lazy`): importing ``tideflow.core`` or one
of its submodules imports no Ray and nothing the caller does not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideflow.core.lazy import lazy_exports

if TYPE_CHECKING:
    from tideflow.core.autoscaler import (
        ClusterPlan,
        ClusterPlanner,
        NodePool,
        PoolScaler,
        ScaleDecision,
        ScalingConfig,
        UtilizationSample,
    )
    from tideflow.core.checkpoint import (
        AckTracker,
        Checkpoint,
        CheckpointId,
        CheckpointInfo,
        CheckpointStore,
        EpochCoordinator,
    )
    from tideflow.core.clock import (
        Clock,
        MonotonicClock,
    )
    from tideflow.core.errors import (
        CheckpointError,
        CheckpointLocationError,
        CheckpointNotFoundError,
        ConfigError,
        EpochAbortedError,
        MissingDependencyError,
        PoolClosedError,
        SchedulerError,
        TideflowError,
        WorkFailedError,
    )
    from tideflow.core.observability import (
        ActorEvent,
        CheckpointEvent,
        Event,
        Metrics,
        RetryEvent,
        ScaleEvent,
        configure_logging,
        get_logger,
        log_event,
    )
    from tideflow.core.scheduler import (
        ActorPool,
        PoolFuture,
        ResourceRequest,
    )

__all__ = [
    # checkpoints
    "AckTracker",
    "Checkpoint",
    "CheckpointId",
    "CheckpointInfo",
    "CheckpointStore",
    "EpochCoordinator",
    # autoscaling
    "ClusterPlan",
    "ClusterPlanner",
    "NodePool",
    "PoolScaler",
    "ScaleDecision",
    "ScalingConfig",
    "UtilizationSample",
    # actor pools
    "ActorPool",
    "PoolFuture",
    "ResourceRequest",
    # time
    "Clock",
    "MonotonicClock",
    # observability
    "ActorEvent",
    "CheckpointEvent",
    "Event",
    "Metrics",
    "RetryEvent",
    "ScaleEvent",
    "configure_logging",
    "get_logger",
    "log_event",
    # errors
    "CheckpointError",
    "CheckpointLocationError",
    "CheckpointNotFoundError",
    "ConfigError",
    "EpochAbortedError",
    "MissingDependencyError",
    "PoolClosedError",
    "SchedulerError",
    "TideflowError",
    "WorkFailedError",
]

_EXPORTS = {
    "ClusterPlan": ".autoscaler",
    "ClusterPlanner": ".autoscaler",
    "NodePool": ".autoscaler",
    "PoolScaler": ".autoscaler",
    "ScaleDecision": ".autoscaler",
    "ScalingConfig": ".autoscaler",
    "UtilizationSample": ".autoscaler",
    "AckTracker": ".checkpoint",
    "Checkpoint": ".checkpoint",
    "CheckpointId": ".checkpoint",
    "CheckpointInfo": ".checkpoint",
    "CheckpointStore": ".checkpoint",
    "EpochCoordinator": ".checkpoint",
    "Clock": ".clock",
    "MonotonicClock": ".clock",
    "CheckpointError": ".errors",
    "CheckpointLocationError": ".errors",
    "CheckpointNotFoundError": ".errors",
    "ConfigError": ".errors",
    "EpochAbortedError": ".errors",
    "MissingDependencyError": ".errors",
    "PoolClosedError": ".errors",
    "SchedulerError": ".errors",
    "TideflowError": ".errors",
    "WorkFailedError": ".errors",
    "ActorEvent": ".observability",
    "CheckpointEvent": ".observability",
    "Event": ".observability",
    "Metrics": ".observability",
    "RetryEvent": ".observability",
    "ScaleEvent": ".observability",
    "configure_logging": ".observability",
    "get_logger": ".observability",
    "log_event": ".observability",
    "ActorPool": ".scheduler",
    "PoolFuture": ".scheduler",
    "ResourceRequest": ".scheduler",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
