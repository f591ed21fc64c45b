"""Multi-pool cluster capacity: turn resource demand into a node count per node pool.

One Ray cluster spans several node pools (for example Kubernetes node groups): dedicated
online and offline pools and "tidal" pools of preemptible spare capacity. The planner is pure
logic: given the demand and the current node counts it says how many nodes each pool should
have and why. Rendering the plan as KubeRay worker-group replicas is a separate step.

The rules:

* **Existing nodes first.** Demand is placed on the nodes the cluster has before any node is
  added, in *keep order*: dedicated pools before tidal ones, then higher ``priority`` first.
* **Scale-up fills by priority.** Demand that does not fit on existing nodes opens new nodes
  in *fill order*: higher ``priority`` first; on equal priority dedicated before tidal, then
  by name. A pool takes nodes until its ``max_nodes``, then the next pool in order.
* **Scale-down releases tidal capacity first.** Because keep order packs dedicated nodes
  first, the nodes left empty are tidal ones, lowest priority first; they are released down
  to each pool's ``min_nodes``.
* **Dedicated pools stay stable.** A dedicated pool never releases a node while any tidal
  pool still holds nodes above its minimum; after that it releases only its empty nodes,
  lowest priority first. With ``release_idle_dedicated=False`` dedicated pools never shrink.
* Counts outside ``[min_nodes, max_nodes]`` are brought inside first.

Demand is either a list of per-actor resource bundles (each must fit on one node; placed
first-fit, largest first) or one mapping of total resources, treated as divisible.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tideflow.core.errors import ConfigError

__all__ = ["ClusterPlan", "ClusterPlanner", "NodePool", "PoolPlan"]

Resources = Mapping[str, float]
_EPS = 1e-9


@dataclass(frozen=True, kw_only=True)
class NodePool:
    """A group of identical nodes the cluster can grow or shrink (a Kubernetes node pool)."""

    name: str
    """Unique name (the KubeRay worker group it becomes)."""
    node_shape: Resources
    """Resources of one node, e.g. ``{"CPU": 32, "GPU": 8, "memory": 256e9}``."""
    max_nodes: int
    """Most nodes the pool may have (≥ ``min_nodes``)."""
    priority: int = 0
    """Higher priority pools receive new demand first."""
    tidal: bool = False
    """Preemptible spare capacity: released first when demand falls."""
    min_nodes: int = 0
    """Nodes the pool always keeps (≥ 0)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("NodePool.name must be a non-empty string; got ''")
        shape = dict(self.node_shape)
        bad = {k: v for k, v in shape.items() if not (isinstance(v, int | float) and v >= 0)}
        if bad or not any(v > 0 for v in shape.values()):
            raise ConfigError(
                f"NodePool.node_shape of {self.name!r} must map resource names to "
                f"amounts >= 0, at least one > 0; got {self.node_shape!r}"
            )
        object.__setattr__(self, "node_shape", types.MappingProxyType(shape))
        if self.min_nodes < 0:
            raise ConfigError(
                f"NodePool.min_nodes of {self.name!r} must be >= 0; got {self.min_nodes}"
            )
        if self.max_nodes < self.min_nodes:
            raise ConfigError(
                f"NodePool.max_nodes of {self.name!r} must be >= min_nodes "
                f"({self.min_nodes}); got {self.max_nodes}"
            )


@dataclass(frozen=True, kw_only=True)
class PoolPlan:
    """The plan for one pool."""

    pool: str
    """The pool's name."""
    current: int
    """Nodes it has now."""
    target: int
    """Nodes it should have."""
    used: int
    """Nodes of the target that hold demand."""
    reason: str
    """Why the target is what it is."""

    @property
    def delta(self) -> int:
        return self.target - self.current


@dataclass(frozen=True, kw_only=True)
class ClusterPlan:
    """Target nodes per pool, and the demand that no pool could take."""

    pools: Mapping[str, PoolPlan]
    """One entry per pool, in the planner's pool order."""
    unmet: tuple[Resources, ...] = ()
    """Bundles that could not be placed, or the leftover of a divisible demand."""
    unmet_reasons: tuple[str, ...] = ()
    """Why each entry of ``unmet`` could not be placed."""

    @property
    def targets(self) -> dict[str, int]:
        """Target nodes per pool."""
        return {name: p.target for name, p in self.pools.items()}

    @property
    def changes(self) -> dict[str, int]:
        """Pools whose node count changes, with the change."""
        return {name: p.delta for name, p in self.pools.items() if p.delta}

    @property
    def satisfied(self) -> bool:
        """Whether all demand fits in the planned capacity."""
        return not self.unmet


@dataclass
class _Node:
    pool: NodePool
    free: dict[str, float]
    used: bool = False
    new: bool = False
    placed: list[Resources] = field(default_factory=list)


def _fits(bundle: Resources, free: Mapping[str, float]) -> bool:
    return all(v <= free.get(k, 0.0) + _EPS for k, v in bundle.items() if v > 0)


def _overlaps(rem: Mapping[str, float], free: Mapping[str, float]) -> bool:
    return any(v > _EPS and free.get(k, 0.0) > _EPS for k, v in rem.items())


class ClusterPlanner:
    """Plans node counts for a set of :class:`NodePool` (see the module docs for the rules)."""

    def __init__(self, pools: Sequence[NodePool], *, release_idle_dedicated: bool = True) -> None:
        names = [p.name for p in pools]
        if not pools or len(set(names)) != len(names):
            raise ConfigError(
                f"ClusterPlanner needs at least one pool and unique names; got {names}"
            )
        self.pools: tuple[NodePool, ...] = tuple(pools)
        self.release_idle_dedicated = release_idle_dedicated
        self.fill_order: tuple[NodePool, ...] = tuple(
            sorted(pools, key=lambda p: (-p.priority, p.tidal, p.name))
        )
        """Order in which pools receive new nodes."""
        self.keep_order: tuple[NodePool, ...] = tuple(
            sorted(pools, key=lambda p: (p.tidal, -p.priority, p.name))
        )
        """Order in which existing nodes receive demand; its reverse is the release order."""

    def plan(
        self, demand: Resources | Sequence[Resources], current: Mapping[str, int]
    ) -> ClusterPlan:
        """Target nodes per pool for ``demand`` given the ``current`` node counts."""
        unknown = set(current) - {p.name for p in self.pools}
        if unknown:
            raise ConfigError(
                f"ClusterPlanner.plan: current names unknown pools {sorted(unknown)};"
                f" known: {[p.name for p in self.pools]}"
            )
        start = {
            p.name: min(p.max_nodes, max(p.min_nodes, current.get(p.name, 0))) for p in self.pools
        }
        nodes = [
            _Node(pool=p, free=dict(p.node_shape))
            for p in self.keep_order
            for _ in range(start[p.name])
        ]
        counts = dict(start)
        if isinstance(demand, Mapping):
            unmet, why = self._place_divisible(demand, nodes, counts)
        else:
            unmet, why = self._place_bundles(demand, nodes, counts)
        return self._targets(
            nodes=nodes, counts=counts, current=current, start=start, unmet=unmet, why=why
        )

    # -- placement ----------------------------------------------------------------------------

    def _new_node(self, pool: NodePool, nodes: list[_Node], counts: dict[str, int]) -> _Node:
        node = _Node(pool=pool, free=dict(pool.node_shape), new=True)
        nodes.append(node)
        counts[pool.name] += 1
        return node

    def _place_bundles(
        self, bundles: Sequence[Resources], nodes: list[_Node], counts: dict[str, int]
    ) -> tuple[list[Resources], list[str]]:
        largest = {k: max(p.node_shape.get(k, 0.0) for p in self.pools) for b in bundles for k in b}

        def size(b: Resources) -> float:
            return (
                max((v / largest[k] if largest[k] > 0 else math.inf) for k, v in b.items())
                if b
                else 0.0
            )

        unmet: list[Resources] = []
        why: list[str] = []
        for bundle in sorted(bundles, key=size, reverse=True):
            node = next((n for n in nodes if _fits(bundle, n.free)), None)
            if node is None:
                pool = next(
                    (
                        p
                        for p in self.fill_order
                        if counts[p.name] < p.max_nodes and _fits(bundle, p.node_shape)
                    ),
                    None,
                )
                if pool is None:
                    shaped = [p.name for p in self.pools if _fits(bundle, p.node_shape)]
                    unmet.append(dict(bundle))
                    why.append(
                        f"pools whose node shape fits {dict(bundle)} are at max_nodes: {shaped}"
                        if shaped
                        else f"no pool's node shape fits {dict(bundle)}"
                    )
                    continue
                node = self._new_node(pool, nodes, counts)
            for k, v in bundle.items():
                node.free[k] = node.free.get(k, 0.0) - v
            node.used = True
            node.placed.append(bundle)
        return unmet, why

    def _place_divisible(
        self, demand: Resources, nodes: list[_Node], counts: dict[str, int]
    ) -> tuple[list[Resources], list[str]]:
        rem = {k: float(v) for k, v in demand.items() if v > 0}

        def absorb(node: _Node) -> None:
            for k, want in rem.items():
                take = min(want, node.free.get(k, 0.0))
                rem[k] -= take
                node.free[k] = node.free.get(k, 0.0) - take
            node.used = True

        for node in nodes:
            if not _overlaps(rem, node.free):
                continue
            absorb(node)
        while any(v > _EPS for v in rem.values()):
            pool = next(
                (
                    p
                    for p in self.fill_order
                    if counts[p.name] < p.max_nodes and _overlaps(rem, p.node_shape)
                ),
                None,
            )
            if pool is None:
                break
            absorb(self._new_node(pool, nodes, counts))
        left = {k: v for k, v in rem.items() if v > _EPS}
        if not left:
            return [], []
        return [left], [
            f"{left} does not fit: pools offering it are at max_nodes or none offers it"
        ]

    # -- targets ------------------------------------------------------------------------------

    def _targets(
        self,
        *,
        nodes: list[_Node],
        counts: dict[str, int],
        current: Mapping[str, int],
        start: dict[str, int],
        unmet: list[Resources],
        why: list[str],
    ) -> ClusterPlan:
        used = {p.name: 0 for p in self.pools}
        for node in nodes:
            used[node.pool.name] += node.used
        target: dict[str, int] = {}
        for p in self.pools:
            if p.tidal:
                target[p.name] = max(p.min_nodes, used[p.name])
        tidal_in_use = any(target[p.name] > p.min_nodes for p in self.pools if p.tidal)
        for p in self.pools:
            if not p.tidal:
                floor = (
                    p.min_nodes
                    if self.release_idle_dedicated and not tidal_in_use
                    else start[p.name]
                )
                target[p.name] = max(floor, used[p.name])
        plans = {
            p.name: PoolPlan(
                pool=p.name,
                current=current.get(p.name, 0),
                target=target[p.name],
                used=used[p.name],
                reason=self._reason(
                    p,
                    cur=current.get(p.name, 0),
                    start=start[p.name],
                    count=counts[p.name],
                    target=target[p.name],
                    used=used[p.name],
                    tidal_in_use=tidal_in_use,
                ),
            )
            for p in self.pools
        }
        return ClusterPlan(pools=plans, unmet=tuple(unmet), unmet_reasons=tuple(why))

    def _reason(
        self,
        p: NodePool,
        *,
        cur: int,
        start: int,
        count: int,
        target: int,
        used: int,
        tidal_in_use: bool,
    ) -> str:
        kind = "tidal" if p.tidal else "dedicated"
        added = count - start
        if added:
            rank = self.fill_order.index(p) + 1
            return (
                f"up {cur} → {target}: {added} new node(s) for demand that did not fit on "
                f"existing nodes (fill order #{rank})"
            )
        if cur < p.min_nodes:
            return f"up {cur} → {target}: raised to min_nodes {p.min_nodes}"
        if cur > p.max_nodes and target == p.max_nodes:
            return f"down {cur} → {target}: lowered to max_nodes {p.max_nodes}"
        if target < start:
            tail = "" if p.tidal else " (no tidal capacity in use)"
            return f"down {cur} → {target}: {start - target} idle {kind} node(s) released{tail}"
        idle = target - used
        if idle > 0 and not p.tidal and target > p.min_nodes:
            why = (
                "release_idle_dedicated is off"
                if not self.release_idle_dedicated
                else "tidal pools still hold nodes"
            )
            return f"hold {target}: {idle} idle dedicated node(s) kept ({why})"
        if idle > 0:
            return f"hold {target}: at min_nodes {p.min_nodes}"
        return f"hold {target}: all nodes hold demand"
