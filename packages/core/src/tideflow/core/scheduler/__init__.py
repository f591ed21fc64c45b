"""Elastic actor pools over Ray: the unit of work of every Tideflow stage.

An :class:`ActorPool` runs N actors of one class, each reserving a :class:`ResourceRequest`
(CPUs, GPUs, accelerator type, custom resources). ``submit(method, *args, priority=...)``
returns a :class:`PoolFuture`; work goes to the least-loaded actor below its in-flight
limit, higher priority first. Dead actors are replaced and their work retried with backoff;
``resize`` grows or drains the pool without losing work; ``utilization()`` feeds an
autoscaling policy (a :class:`Scaler` such as ``tideflow.core.autoscaler.PoolScaler``).

>>> pool = ActorPool(Model, size=2, resources=ResourceRequest(num_gpus=1))  # doctest: +SKIP
>>> futures = [pool.submit("predict", batch, priority=1) for batch in batches]  # doctest: +SKIP

The scheduling decisions are plain functions (:func:`pick_actor`,
:func:`pick_actors_to_remove`, :func:`retry_backoff`) and a plain :class:`WorkQueue`.
"""

from __future__ import annotations

from tideflow.core.scheduler._future import PoolFuture, WithMeta
from tideflow.core.scheduler._pool import ActorPool
from tideflow.core.scheduler._resources import ResourceRequest
from tideflow.core.scheduler._scheduling import (
    ActorLoad,
    ActorState,
    WorkQueue,
    pick_actor,
    pick_actors_to_remove,
    retry_backoff,
)
from tideflow.core.scheduler._types import PoolStats, ScaleDecisionLike, Scaler

__all__ = [
    "ActorLoad",
    "ActorPool",
    "ActorState",
    "PoolFuture",
    "PoolStats",
    "WithMeta",
    "ResourceRequest",
    "ScaleDecisionLike",
    "Scaler",
    "WorkQueue",
    "pick_actor",
    "pick_actors_to_remove",
    "retry_backoff",
]
