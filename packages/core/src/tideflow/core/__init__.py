"""Tideflow core: the primitives the streaming engine and the RL trainer share.

* :mod:`tideflow.core.checkpoint` — durable checkpoints over any ``pyarrow.fs`` URI, the
  epoch coordinator (in-order completion, two-phase callbacks) and record-level acks.
* :mod:`tideflow.core.autoscaler` — the windowed, debounced scaling policy of one pool and
  the multi-pool cluster planner (tidal pools released first).
* :mod:`tideflow.core.scheduler` — an elastic actor pool over Ray: priorities, least-loaded
  dispatch, retry of work whose actor died, resize without losing work.
* :mod:`tideflow.core.observability` — structlog set-up, event types, metric names.

The most used names are re-exported here; each submodule's ``__all__`` has the rest.
Importing ``tideflow.core`` does not import Ray: the actor-pool names load it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from tideflow.core.clock import Clock, MonotonicClock
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

if TYPE_CHECKING:
    from tideflow.core.scheduler import ActorPool, PoolFuture, ResourceRequest

_LAZY = {"ActorPool", "PoolFuture", "ResourceRequest"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from tideflow.core import scheduler

        return getattr(scheduler, name)
    raise AttributeError(f"module 'tideflow.core' has no attribute {name!r}")


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
