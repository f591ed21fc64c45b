"""How a plan is turned into running parts: a table from a stage's kind to the function
that plans it into a physical operator (like Ray Data's planner), and what each kind keeps
in checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tideflow.streaming._operators.base import OperatorHooks, PhysicalOperator, participant
from tideflow.streaming._operators.keyed import KeyedOperator, restore_partitions
from tideflow.streaming._operators.pool_map import PoolMapOperator
from tideflow.streaming._plan import Plan, StageSpec
from tideflow.streaming.errors import ConfigError

__all__ = [
    "PLANNERS",
    "OperatorPlanner",
    "PlanContext",
    "plan_operator",
    "planner_for",
    "restore_states",
    "stateful_stages",
]


@dataclass(kw_only=True)
class PlanContext:
    """What plan functions need besides the stage's spec."""

    hooks: OperatorHooks = field(default_factory=OperatorHooks)
    """Passed to every operator."""
    states: Mapping[str, Any] = field(default_factory=dict)
    """Stage name → its state restored from the last checkpoint (stateful kinds only)."""
    pools: dict[str, Any] = field(default_factory=dict)
    """Stage name → the actor pool an earlier attempt of the run handed on (stateless
    stages): a planner takes it (``pop``) instead of starting new actors, so a restart
    keeps the stage's live actors, warm, at the pool's size."""


def plan_pool_map(spec: StageSpec, ctx: PlanContext) -> PhysicalOperator:
    """A stateless stage: an elastic :class:`ActorPool` of :class:`StageWorker`."""
    from tideflow.core.autoscaler import PoolScaler, ScalingConfig
    from tideflow.core.scheduler import ActorPool
    from tideflow.streaming._worker import StageWorker

    scaler = None
    if spec.max_actors > spec.min_actors:
        scaler = PoolScaler(
            spec.name, ScalingConfig(min_size=spec.min_actors, max_size=spec.max_actors)
        )
    # Two calls at once per actor when batches are pipelined: the stage's function
    # still runs one batch at a time (see StageWorker.process).
    pipelined = spec.max_in_flight > 1
    carried = ctx.pools.pop(spec.name, None)
    if carried is not None:
        return PoolMapOperator(spec, carried, ctx.hooks)
    pool = ActorPool(
        StageWorker,
        args=(spec,),
        kwargs={"pipelined": pipelined},
        actor_options={"max_concurrency": 2} if pipelined else None,
        size=spec.min_actors,
        min_size=spec.min_actors,
        max_size=spec.max_actors,
        resources=spec.resources,
        max_in_flight_per_actor=spec.max_in_flight,
        max_retries=spec.max_retries,
        name=spec.name,
        scaler=scaler,
    )
    return PoolMapOperator(spec, pool, ctx.hooks)


def plan_keyed(spec: StageSpec, ctx: PlanContext) -> PhysicalOperator:
    """A keyed stateful stage: one :class:`KeyedWorker` actor per partition, built from
    the partitions' restored snapshots."""
    import ray

    from tideflow.streaming._keyed import KeyedWorker

    remote: Any = ray.remote(KeyedWorker)
    states = ctx.states.get(spec.name) or [None] * spec.partitions
    actors = [
        remote.options(**spec.resources.to_ray_options()).remote(
            spec, spec.key, state, index=index, partitions=spec.partitions
        )
        for index, state in enumerate(states)
    ]
    return KeyedOperator(spec, actors, ctx.hooks)


@dataclass(frozen=True, kw_only=True)
class OperatorPlanner:
    """How one kind of stage is planned, and whether it has checkpointed state."""

    plan: Callable[[StageSpec, PlanContext], PhysicalOperator]
    """Builds the operator (and starts its actors)."""
    restore: Callable[[StageSpec, Any, str], Any] | None = None
    """For a stateful kind: ``restore(spec, checkpointed state, job id)`` → the state
    :attr:`PlanContext.states` hands to :attr:`plan`. None: stateless."""


_POOL_MAP = OperatorPlanner(plan=plan_pool_map)
PLANNERS: Mapping[str, OperatorPlanner] = {
    "batches": _POOL_MAP,
    "map": _POOL_MAP,
    "flat_map": _POOL_MAP,
    "filter": _POOL_MAP,
    "keyed": OperatorPlanner(plan=plan_keyed, restore=restore_partitions),
}
"""Stage kind → its planner."""


def planner_for(spec: StageSpec) -> OperatorPlanner:
    """The planner of ``spec``'s kind; an unknown kind lists the known ones."""
    try:
        return PLANNERS[spec.kind]
    except KeyError:
        message = f"stage {spec.name!r}: unknown kind {spec.kind!r}; known: {sorted(PLANNERS)}"
        raise ConfigError(message) from None


def plan_operator(spec: StageSpec, ctx: PlanContext) -> PhysicalOperator:
    """The physical operator of ``spec``."""
    return planner_for(spec).plan(spec, ctx)


def stateful_stages(plan: Plan) -> dict[str, StageSpec]:
    """Checkpoint participant → spec, for the stages whose state goes into checkpoints."""
    return {participant(s): s for s in plan.stages if planner_for(s).restore is not None}


def restore_states(plan: Plan, states: Mapping[str, Any], job_id: str) -> dict[str, Any]:
    """Stage name → restored state, from a checkpoint's participant states."""
    restored = {}
    for name, spec in stateful_stages(plan).items():
        restore = planner_for(spec).restore
        assert restore is not None
        restored[spec.name] = restore(spec, states[name], job_id)
    return restored
