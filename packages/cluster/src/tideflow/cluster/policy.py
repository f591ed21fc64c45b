"""The multi-pool autoscaling policy of a KubeRay cluster: one planner tick per call.

Pure logic: no Ray, no Kubernetes, an injected clock. A tick takes a :class:`ClusterView`
(the worker pods of each group, the pods still starting, Ray's unmet resource bundles) and
returns one :class:`GroupChange` per worker group that must change: its new ``replicas`` and,
for a scale-down, exactly which pods go (KubeRay's ``scaleStrategy.workersToDelete``). A
worker group is a :class:`~tideflow.core.autoscaler.NodePool` of the same name.

The rules, in the order a tick applies them:

1. **A reclaimed pod is gone.** A tidal pod under a reclaim notice takes no demand: its
   group's replicas drop by it and it is named in ``workers_to_delete`` (so that KubeRay does
   not recreate it), the work on it is demand again, and its group takes no new pod for
   ``reclaim_hold_s``, so that the replacement is planned in the next pool on the same tick.
2. **Existing pods first.** Pending bundles go to free room on running pods, in the
   planner's keep order (dedicated before tidal, higher ``priority`` first), busiest pod first.
3. **Scale-up fills pools by priority.** The rest goes to the
   :class:`~tideflow.core.autoscaler.ClusterPlanner`: onto pods still starting, then onto new
   pods, higher ``priority`` first up to ``max_nodes`` (not by fit first, as Ray's v2 does).
4. **Scale-down releases tidal pods first.** A pod may go once it has been idle for
   ``idle_timeout_s`` and no pending bundle was placed on it: tidal pools first (lowest
   priority first), then the least useful (idle longest, fewest resources used); a dedicated
   pod goes only when no tidal pool holds a pod above its ``min_nodes``. Never below
   ``min_nodes``, and never in a group that scales up on the same tick.
5. **Per-pool state, no cluster-wide lock.** A pending delete (``deleting``) counts as gone
   and concerns its own group only: other groups decide as if it were done.
6. **Anti-jitter.** A group changes direction (up after down, down after up) at most once per
   ``window_s``; a change that would be a second one is held, and its demand waits rather
   than spilling into another pool. A reclaim is not a decision and is never held.

Every change is also a :class:`GroupScaleEvent` in :attr:`MultiPoolPolicy.events`, logged as
``cluster.group_scaled``; why a group did not scale is in :attr:`MultiPoolPolicy.holds`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tideflow.core.autoscaler import ClusterPlanner, NodePool
from tideflow.core.clock import Clock, MonotonicClock
from tideflow.core.errors import ConfigError
from tideflow.core.observability import Event, get_logger, log_event

__all__ = [
    # configuration
    "PolicyConfig",
    # what the policy sees and says
    "WorkerNode",
    "ClusterView",
    "GroupChange",
    # the policy and its records
    "MultiPoolPolicy",
    "GroupScaleEvent",
    "ScaleCause",
    "HoldCode",
    "PoolHold",
]

Resources = Mapping[str, float]
_EPS = 1e-9


def _fail(field_name: str, allowed: str, seen: object) -> ConfigError:
    return ConfigError(f"PolicyConfig.{field_name} must be {allowed}; got {seen!r}")


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """How :class:`MultiPoolPolicy` paces its decisions (see the module docs for the rules)."""

    idle_timeout_s: float = 60.0
    """A pod may be released once idle this long, in seconds (≥ 0; KubeRay's
    ``idleTimeoutSeconds``)."""
    window_s: float = 120.0
    """Anti-jitter window in seconds (> 0): a group changes scale direction at most once in it."""
    reclaim_hold_s: float = 300.0
    """After a reclaim notice in a pool, the pool takes no new pod for this long, in seconds
    (≥ 0): its capacity is being taken back."""
    release_dedicated: bool = True
    """Whether idle dedicated pods are released at all (only ever once no tidal pod is up)."""

    def __post_init__(self) -> None:
        if not isinstance(self.release_dedicated, bool):
            raise _fail("release_dedicated", "a bool", self.release_dedicated)
        for name, positive in (
            ("idle_timeout_s", False),
            ("window_s", True),
            ("reclaim_hold_s", False),
        ):
            value = getattr(self, name)
            allowed = "a finite number " + ("> 0" if positive else ">= 0")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(name, allowed, value)
            if not math.isfinite(value) or value < 0 or (positive and value == 0):
                raise _fail(name, allowed, value)


@dataclass(frozen=True, kw_only=True)
class WorkerNode:
    """One worker pod of a KubeRay worker group, as Ray and Kubernetes report it."""

    name: str
    """The pod's name (what ``workersToDelete`` lists)."""
    group: str
    """Its worker group, the :class:`NodePool` of that name."""
    used: Resources = field(default_factory=dict)
    """Resources in use on it (Ray's total minus available)."""
    idle_s: float = 0.0
    """Seconds it has been idle (Ray's idle duration; 0 while anything runs on it)."""
    deleting: bool = False
    """Already named in ``workersToDelete`` and not gone yet (a pending delete)."""
    reclaim_notice: bool = False
    """A tidal pod under a reclaim notice: it will go, so no demand is placed on it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "used", types.MappingProxyType(dict(self.used)))


@dataclass(frozen=True, kw_only=True)
class ClusterView:
    """What one planner tick sees."""

    nodes: tuple[WorkerNode, ...] = ()
    """Worker pods that are up (running Ray), pending deletes included."""
    starting: Mapping[str, int] = field(default_factory=dict)
    """Per group, replicas asked for whose pods are not up yet."""
    demand: tuple[Resources, ...] = ()
    """Pending resource bundles: Ray's unmet requests, each to be placed on one pod."""


@dataclass(frozen=True, kw_only=True)
class GroupChange:
    """The new scale of one worker group."""

    group: str
    """The worker group (``groupName``)."""
    replicas: int
    """The new ``replicas`` value: the pods the group has once the listed ones are gone."""
    workers_to_delete: tuple[str, ...]
    """Pods this change removes, all of ``group``, tidal ones first; the caller adds them to
    the group's ``workersToDelete`` (names listed earlier stay until their pods are gone)."""
    reason: str
    """Why, in words, with the figures."""
    from_replicas: int = 0
    """The replicas the group had when the change was planned (pending deletes excluded)."""

    @property
    def launched(self) -> int:
        """New pods the change asks for: ``replicas`` − ``from_replicas`` + the pods it deletes."""
        return self.replicas - self.from_replicas + len(self.workers_to_delete)


class ScaleCause(enum.StrEnum):
    """Why a group scaled."""

    DEMAND = "demand"
    MIN_NODES = "min_nodes"
    IDLE = "idle"
    RECLAIM = "reclaim"


class HoldCode(enum.StrEnum):
    """Why a group did not scale although something asked for it (back-pressure)."""

    ANTI_JITTER = "anti_jitter"
    RECLAIM_HOLD = "reclaim_hold"
    NO_ROOM = "no_room"
    TIDAL_FIRST = "tidal_first"


@dataclass(frozen=True, kw_only=True)
class GroupScaleEvent(Event):
    """A worker group was asked to change its replicas."""

    name: ClassVar[str] = "cluster.group_scaled"
    group: str
    """The worker group."""
    direction: Literal["up", "down"]
    """Which way it scaled."""
    from_replicas: int
    """Replicas before."""
    to_replicas: int
    """Replicas asked for."""
    cause: ScaleCause
    """Demand, min_nodes, idle pods or a reclaim notice (the last is not a decision)."""
    reason: str
    """Why, with the figures."""
    workers_to_delete: tuple[str, ...] = ()
    """The pods named for deletion by this event."""


@dataclass(frozen=True, kw_only=True)
class PoolHold:
    """A group that did not scale on the latest tick, and why."""

    group: str
    """The worker group (``""`` for demand no group can take)."""
    code: HoldCode
    """The kind of hold, for counting."""
    reason: str
    """Why, with the figures."""


@dataclass
class _PoolState:
    direction: str | None = None
    reversal_at: float | None = None
    hold_until: float = -math.inf


@dataclass
class _Tick:
    """One tick's working set: what it saw, what it plans, what it records."""

    now: float
    alive: dict[str, list[WorkerNode]]
    noticed: dict[str, list[WorkerNode]]
    starting: dict[str, int]
    replicas: dict[str, int]
    hold_until: dict[str, float] = field(default_factory=dict)
    fed: set[str] = field(default_factory=set)
    launches: dict[str, int] = field(default_factory=dict)
    released: dict[str, list[WorkerNode]] = field(default_factory=dict)
    changes: list[GroupChange] = field(default_factory=list)
    events: list[GroupScaleEvent] = field(default_factory=list)
    holds: list[PoolHold] = field(default_factory=list)


def _total(resources: Resources) -> float:
    return sum(v for v in resources.values() if v > 0)


def _fits(bundle: Resources, free: Mapping[str, float]) -> bool:
    return all(v <= free.get(k, 0.0) + _EPS for k, v in bundle.items() if v > 0)


class MultiPoolPolicy:
    """Decides the replicas and the pods to delete of every worker group, one tick at a time."""

    def __init__(
        self,
        pools: Sequence[NodePool],
        *,
        config: PolicyConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.planner = ClusterPlanner(pools)
        """The planner whose keep and fill orders the policy follows."""
        self.pools: dict[str, NodePool] = {p.name: p for p in pools}
        self.config = config if config is not None else PolicyConfig()
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._state = {name: _PoolState() for name in self.pools}
        self._events: list[GroupScaleEvent] = []
        self._holds: tuple[PoolHold, ...] = ()
        self._log = get_logger("tideflow.cluster.policy")
        largest: dict[str, float] = {}
        for p in pools:
            for k, v in p.node_shape.items():
                largest[k] = max(largest.get(k, 0.0), v)
        self._largest = largest

    def __repr__(self) -> str:
        return f"MultiPoolPolicy(pools={list(self.pools)}, config={self.config!r})"

    @property
    def events(self) -> list[GroupScaleEvent]:
        """Every scale so far, oldest first (a copy)."""
        return list(self._events)

    @property
    def holds(self) -> tuple[PoolHold, ...]:
        """Why groups did not scale on the latest tick."""
        return self._holds

    def decide(self, view: ClusterView) -> list[GroupChange]:
        """One planner tick: the changes to make now, recorded as events."""
        tick = self._plan(view, self._clock.now())
        for event in tick.events:
            state = self._state[event.group]
            if event.cause is not ScaleCause.RECLAIM:
                if state.direction not in (None, event.direction):
                    state.reversal_at = tick.now
                state.direction = event.direction
            self._events.append(event)
            log_event(self._log, event)
        for group, until in tick.hold_until.items():
            self._state[group].hold_until = until
        self._holds = tuple(tick.holds)
        for hold in self._holds:
            self._log.debug("cluster.scale_held", group=hold.group, code=str(hold.code))
        return tick.changes

    def preview(self, view: ClusterView) -> list[GroupChange]:
        """What :meth:`decide` would return now, without recording anything."""
        return self._plan(view, self._clock.now()).changes

    # -- one tick -----------------------------------------------------------------------------

    def _plan(self, view: ClusterView, now: float) -> _Tick:
        unknown = ({n.group for n in view.nodes} | set(view.starting)) - set(self.pools)
        if unknown:
            raise ConfigError(
                f"ClusterView names unknown worker groups {sorted(unknown)};"
                f" known: {list(self.pools)}"
            )
        starting = {g: max(0, int(view.starting.get(g, 0))) for g in self.pools}
        tick = _Tick(
            now=now,
            alive={g: [] for g in self.pools},
            noticed={g: [] for g in self.pools},
            starting=starting,
            replicas=dict(starting),
        )
        for node in view.nodes:
            if not node.deleting:
                tick.replicas[node.group] += 1
                (tick.noticed if node.reclaim_notice else tick.alive)[node.group].append(node)
        for g, nodes in tick.noticed.items():
            if nodes:
                tick.hold_until[g] = now + self.config.reclaim_hold_s
        lost = [n.used for nodes in tick.noticed.values() for n in nodes if _total(n.used) > 0]
        leftover = self._place_on_running([*view.demand, *lost], tick)
        self._launch(leftover, tick)
        self._release(tick)
        for g in self.pools:
            self._change(g, tick)
        return tick

    def _size(self, bundle: Resources) -> float:
        shares = [
            v / self._largest[k] if self._largest.get(k, 0.0) > 0 else math.inf
            for k, v in bundle.items()
            if v > 0
        ]
        return max(shares, default=0.0)

    def _place_on_running(self, bundles: Sequence[Resources], tick: _Tick) -> list[Resources]:
        """Place bundles, largest first, on free room of running pods; return what is left."""
        slots: list[tuple[str, dict[str, float]]] = []
        for pool in self.planner.keep_order:
            for node in sorted(tick.alive[pool.name], key=lambda n: (-_total(n.used), n.name)):
                free = {k: v - node.used.get(k, 0.0) for k, v in pool.node_shape.items()}
                slots.append((node.name, free))
        leftover: list[Resources] = []
        for bundle in sorted(bundles, key=self._size, reverse=True):
            slot = next((s for s in slots if _fits(bundle, s[1])), None)
            if slot is None:
                leftover.append(bundle)
                continue
            for k, v in bundle.items():
                slot[1][k] = slot[1].get(k, 0.0) - v
            tick.fed.add(slot[0])
        return leftover

    def _launch(self, leftover: Sequence[Resources], tick: _Tick) -> None:
        """New pods per group: the planner places the rest on starting pods, then new ones."""
        room = []
        for p in self.pools.values():
            alive = len(tick.alive[p.name])
            cap = max(0, p.max_nodes - alive)
            until = tick.hold_until.get(p.name, self._state[p.name].hold_until)
            if until > tick.now:
                cap = min(cap, tick.starting[p.name])
                why = f"no new pod until {until:.0f} s: the pool's capacity is being reclaimed"
                tick.holds.append(PoolHold(group=p.name, code=HoldCode.RECLAIM_HOLD, reason=why))
            least = min(cap, max(0, p.min_nodes - alive))
            room.append(dataclasses.replace(p, max_nodes=cap, min_nodes=least))
        plan = ClusterPlanner(room, release_idle_dedicated=False).plan(leftover, tick.starting)
        for why in plan.unmet_reasons:
            tick.holds.append(PoolHold(group="", code=HoldCode.NO_ROOM, reason=why))
        for g, pool_plan in plan.pools.items():
            count = pool_plan.target - tick.starting[g]
            if count > 0 and self._may(g, "up", count, tick):
                tick.launches[g] = count

    def _release(self, tick: _Tick) -> None:
        """Idle pods to delete per group: tidal pools first, dedicated ones after them."""
        timeout = self.config.idle_timeout_s
        left = {
            g: len(tick.alive[g]) + tick.starting[g] + tick.launches.get(g, 0) for g in self.pools
        }
        for pool in reversed(self.planner.keep_order):
            g = pool.name
            idle = sorted(
                (
                    n
                    for n in tick.alive[g]
                    if n.name not in tick.fed and _total(n.used) <= _EPS and n.idle_s >= timeout
                ),
                key=lambda n: (-n.idle_s, _total(n.used), n.name),
            )[: max(0, left[g] - pool.min_nodes)]
            if not idle or tick.launches.get(g, 0):
                continue
            if not pool.tidal:
                tidal_up = [
                    t.name for t in self.pools.values() if t.tidal and left[t.name] > t.min_nodes
                ]
                if tidal_up or not self.config.release_dedicated:
                    why = (
                        f"{len(idle)} idle pod(s) kept while tidal pools {tidal_up} hold pods"
                        if tidal_up
                        else "release_dedicated is off"
                    )
                    tick.holds.append(PoolHold(group=g, code=HoldCode.TIDAL_FIRST, reason=why))
                    continue
            if self._may(g, "down", len(idle), tick):
                tick.released[g] = idle
                left[g] -= len(idle)

    def _change(self, g: str, tick: _Tick) -> None:
        noticed, launches = tick.noticed[g], tick.launches.get(g, 0)
        released = tick.released.get(g, [])
        if not (noticed or launches or released):
            return
        pool, current = self.pools[g], tick.replicas[g]
        steps: list[tuple[ScaleCause, int, tuple[str, ...], str]] = []
        if noticed:
            names = tuple(n.name for n in noticed)
            steps.append((ScaleCause.RECLAIM, -len(names), names, "pod(s) under reclaim notice"))
        if launches:
            if current - len(noticed) + launches <= pool.min_nodes:
                steps.append((ScaleCause.MIN_NODES, launches, (), f"to min_nodes {pool.min_nodes}"))
            else:
                rank = self.planner.fill_order.index(pool) + 1
                words = (
                    "new pod(s) for demand that fits no running or starting pod "
                    f"(fill order #{rank}, priority {pool.priority})"
                )
                steps.append((ScaleCause.DEMAND, launches, (), words))
        if released:
            names = tuple(n.name for n in released)
            kind = "tidal" if pool.tidal else "dedicated"
            words = f"{kind} pod(s) idle ≥ {self.config.idle_timeout_s:g} s released"
            steps.append((ScaleCause.IDLE, -len(names), names, words))
        size = current
        reasons: list[str] = []
        deleted: list[str] = []
        for cause, delta, names, words in steps:
            direction: Literal["up", "down"] = "up" if delta > 0 else "down"
            reason = f"{direction} {size} → {size + delta}: {abs(delta)} {words}"
            tick.events.append(
                GroupScaleEvent(
                    time=tick.now,
                    group=g,
                    direction=direction,
                    from_replicas=size,
                    to_replicas=size + delta,
                    cause=cause,
                    reason=reason,
                    workers_to_delete=names,
                )
            )
            reasons.append(reason)
            deleted.extend(names)
            size += delta
        tick.changes.append(
            GroupChange(
                group=g,
                replicas=size,
                workers_to_delete=tuple(deleted),
                reason="; ".join(reasons),
                from_replicas=current,
            )
        )

    def _may(self, g: str, direction: str, count: int, tick: _Tick) -> bool:
        """Anti-jitter: whether group ``g`` may scale ``direction`` now (a hold if not)."""
        state = self._state[g]
        since = tick.now - state.reversal_at if state.reversal_at is not None else math.inf
        if state.direction in (None, direction) or since >= self.config.window_s:
            return True
        why = (
            f"{direction} by {count} held: the group changed direction {since:.0f} s ago"
            f" (at most once per window_s {self.config.window_s:g} s)"
        )
        tick.holds.append(PoolHold(group=g, code=HoldCode.ANTI_JITTER, reason=why))
        return False
