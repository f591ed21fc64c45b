"""A discrete-time simulation of a multi-pool KubeRay cluster under two autoscalers.

Model (the same for both; only the scaling decisions differ):

* **Work.** Tasks of 2 or 4 CPU arrive as a seeded Poisson process whose rate ramps up,
  holds, ramps down and idles; each runs for an exponential time. A task waits in Ray's
  queue (the pending demand) until a running pod has room. As Ray's hybrid scheduling
  policy does, the first pod (oldest first) under half full takes it, else the least used pod
  that fits; never a pod being deleted or under a reclaim notice.
* **Pods** (a fake KubeRay operator). Each worker group has a ``replicas`` value and a
  ``workersToDelete`` list. Listed pods start deleting and are gone ``delete_latency_s``
  later (a *pending delete* meanwhile); missing pods are created and run Ray
  ``start_latency_s`` later. A pod that vanishes without being listed is recreated.
* **Tidal reclaim.** At ``reclaim_at`` the cloud gives ``reclaim_pods`` busy tidal pods a
  notice; they vanish ``reclaim_notice_s`` later and their tasks go back to the queue. For
  ``tidal_outage_s`` from the notice no tidal pod can start.
* **Autoscaler** every ``tick_s``: it sees the pods, the pods still starting and the queue,
  and asks for replicas and pods to delete. :class:`TideflowAutoscaler` calls
  :meth:`~tideflow.cluster.policy.MultiPoolPolicy.decide`; :class:`RayV2Autoscaler` runs Ray
  2.60's ``ResourceDemandScheduler`` in-process and applies its reply the way Ray's KubeRay
  provider does: no launch and no delete while any group has a pending delete.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tideflow.cluster.policy import ClusterView, MultiPoolPolicy, PolicyConfig, WorkerNode
from tideflow.core.autoscaler import NodePool
from tideflow.core.testing import FakeClock

__all__ = [
    "POOLS",
    "Autoscaler",
    "RayV2Autoscaler",
    "SimConfig",
    "SimResult",
    "TideflowAutoscaler",
    "compare",
    "simulate",
]

POOLS: tuple[NodePool, ...] = (
    NodePool(name="tidal", node_shape={"CPU": 6}, max_nodes=8, priority=20, tidal=True),
    NodePool(name="online", node_shape={"CPU": 8}, max_nodes=8, priority=10, min_nodes=1),
    NodePool(name="offline", node_shape={"CPU": 16}, max_nodes=6, priority=5),
)
"""Spare tidal capacity first, then the online pool, then the big offline nodes: by priority.
By fit (Ray's v2) a queue of 4-CPU tasks fills 16-CPU offline nodes first."""


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """The simulated trace and cluster."""

    seed: int = 0
    """Seed of the task trace and of the reclaimed pods."""
    duration_s: float = 1200.0
    """Simulated seconds: ramp up (first 20 %), steady (to 50 %), ramp down (to 75 %), idle."""
    tick_s: float = 5.0
    """Autoscaler period (Ray's autoscaler loop runs every 5 s)."""
    peak_cpu: float = 110.0
    """Mean CPU the tasks ask for at the peak."""
    task_mean_s: float = 90.0
    """Mean task run time."""
    start_latency_s: float = 40.0
    """From a pod's creation until it runs Ray (scheduling, image pull, Ray start)."""
    delete_latency_s: float = 45.0
    """From a pod's listing in ``workersToDelete`` until it is gone (drain, grace period)."""
    burst_at: float = 0.8
    """When a batch job's tasks arrive at once, during the ramp down (fraction of duration)."""
    burst_tasks: int = 24
    """Tasks of 4 CPU in that batch."""
    reclaim_at: float = 0.35
    """When the reclaim notice comes, as a fraction of ``duration_s``."""
    reclaim_pods: int = 5
    """Tidal pods the cloud reclaims."""
    reclaim_notice_s: float = 30.0
    """Notice before a reclaimed pod vanishes."""
    tidal_outage_s: float = 240.0
    """From the notice, no tidal pod can start for this long."""
    idle_timeout_s: float = 60.0
    """Idle time before a pod may be released (both autoscalers)."""
    window_s: float = 120.0
    """Anti-jitter window of our policy, and the window of the direction-change goal."""


@dataclass
class _Pod:
    name: str
    group: str
    ready_at: float
    tasks: list[tuple[float, float, float]] = field(default_factory=list)  # (ends, CPU, run)
    idle_since: float = 0.0
    gone_at: float | None = None  # set while a delete is pending
    notice_until: float | None = None

    def up(self, now: float) -> bool:
        return self.ready_at <= now

    @property
    def used(self) -> float:
        return sum(t[1] for t in self.tasks)


class Cluster:
    """The pods, Ray's queue and the fake KubeRay operator."""

    def __init__(self, pools: Sequence[NodePool], config: SimConfig) -> None:
        self.pools = {p.name: p for p in pools}
        self.config = config
        self.replicas = {p.name: p.min_nodes for p in pools}
        self.to_delete: dict[str, set[str]] = {p.name: set() for p in pools}
        self.pods: dict[str, _Pod] = {}
        self.queue: list[tuple[float, float]] = []  # (CPU, run time) of waiting tasks
        self.lost_tasks = 0
        self.completed = 0
        self.outage: tuple[str, float, float] | None = None  # (group, from, until)
        self._serial = 0
        self.reconcile(0.0, ready_now=True)

    def cpu(self, group: str) -> float:
        return float(self.pools[group].node_shape.get("CPU", 0.0))

    def pending_deletes(self) -> set[str]:
        """Groups whose ``workersToDelete`` lists a pod that is not gone yet."""
        return {g for g, names in self.to_delete.items() if names & self.pods.keys()}

    def reconcile(self, now: float, *, ready_now: bool = False) -> None:
        for name in list(self.pods):
            pod = self.pods[name]
            ends = [t for t in (pod.gone_at, pod.notice_until) if t is not None]
            if ends and min(ends) <= now:
                self.lost_tasks += len(pod.tasks)
                self.queue[:0] = [(cpu, run_s) for _, cpu, run_s in pod.tasks]  # restart
                del self.pods[name]
        for g in self.to_delete:
            self.to_delete[g] = {n for n in self.to_delete[g] if n in self.pods}
            for name in self.to_delete[g]:
                pod = self.pods[name]
                if pod.gone_at is None:
                    pod.gone_at = now + self.config.delete_latency_s
        for g, want in self.replicas.items():
            have = sum(1 for p in self.pods.values() if p.group == g and p.gone_at is None)
            for _ in range(want - have):
                self._serial += 1
                name = f"{g}-{self._serial}"
                ready = now if ready_now else now + self.config.start_latency_s
                if self.outage and self.outage[0] == g and self.outage[1] <= now < self.outage[2]:
                    ready = self.outage[2] + self.config.start_latency_s
                self.pods[name] = _Pod(name=name, group=g, ready_at=ready, idle_since=ready)

    def run_tasks(self, now: float, arrivals: Sequence[tuple[float, float]]) -> None:
        for pod in self.pods.values():
            done = [t for t in pod.tasks if t[0] <= now]
            if done:
                pod.tasks = [t for t in pod.tasks if t[0] > now]
                self.completed += len(done)
                if not pod.tasks:
                    pod.idle_since = max(t[0] for t in done)
        self.queue.extend(arrivals)
        usable = [
            p
            for p in self.pods.values()
            if p.up(now) and p.gone_at is None and p.notice_until is None
        ]
        waiting = []
        for cpu, run_s in self.queue:
            fits = [p for p in usable if self.cpu(p.group) - p.used >= cpu]
            if not fits:
                waiting.append((cpu, run_s))
                continue
            pod = next(  # Ray's hybrid policy: spread once a node is half full
                (p for p in fits if p.used / self.cpu(p.group) < 0.5),
                min(fits, key=lambda p: p.used / self.cpu(p.group)),
            )
            pod.tasks.append((now + run_s, cpu, run_s))
        self.queue = waiting

    def homeless_fit(self, now: float) -> bool:
        """Whether the tasks on noticed pods and the queued ones fit, first-fit decreasing, in
        the free room of running pods and of pods that will run within ``start_latency_s``
        (none of them deleting or under notice)."""
        horizon = now + self.config.start_latency_s
        free = sorted(
            self.cpu(p.group) - p.used
            for p in self.pods.values()
            if p.gone_at is None and p.notice_until is None and p.ready_at <= horizon
        )
        homeless = [t[1] for p in self.pods.values() if p.notice_until is not None for t in p.tasks]
        for cpu in sorted([*homeless, *(c for c, _ in self.queue)], reverse=True):
            k = next((i for i, room in enumerate(free) if room >= cpu), None)
            if k is None:
                return False
            free[k] -= cpu
        return True

    def reclaim(self, now: float, group: str, count: int) -> list[str]:
        busy = sorted(
            (p for p in self.pods.values() if p.group == group and p.up(now) and p.tasks),
            key=lambda p: (-p.used, p.name),
        )
        for pod in busy[:count]:
            pod.notice_until = now + self.config.reclaim_notice_s
        for pod in self.pods.values():  # pods not up yet wait for the capacity to come back
            if pod.group == group and not pod.up(now):
                pod.ready_at = now + self.config.tidal_outage_s + self.config.start_latency_s
        self.outage = (group, now, now + self.config.tidal_outage_s)
        return [p.name for p in busy[:count]]


@dataclass(frozen=True, kw_only=True)
class Applied:
    """What an autoscaler did on one tick."""

    launched: dict[str, int]
    """New pods per group (replicas raised)."""
    released: dict[str, list[str]]
    """Pods named for deletion per group, by the autoscaler's own choice."""
    reclaimed: dict[str, list[str]] = field(default_factory=dict)
    """Pods named for deletion because of a reclaim notice (not a decision)."""
    unblocked_launches: dict[str, int] = field(default_factory=dict)
    """The launches it would make had every pending delete completed."""


class Autoscaler(Protocol):
    name: str

    def step(self, cluster: Cluster, now: float) -> Applied: ...


class TideflowAutoscaler:
    """:class:`MultiPoolPolicy` each tick; each :class:`GroupChange` patches its own group."""

    name = "tideflow"

    def __init__(self, pools: Sequence[NodePool], config: SimConfig) -> None:
        self.clock = FakeClock()
        self.policy_config = PolicyConfig(
            idle_timeout_s=config.idle_timeout_s, window_s=config.window_s
        )
        self.policy = MultiPoolPolicy(pools, config=self.policy_config, clock=self.clock)

    @staticmethod
    def view(cluster: Cluster, now: float, *, hide_deleting: bool = False) -> ClusterView:
        nodes, starting = [], dict.fromkeys(cluster.pools, 0)
        for pod in cluster.pods.values():
            if pod.gone_at is not None and hide_deleting:
                continue
            if not pod.up(now):
                starting[pod.group] += pod.gone_at is None
                continue
            nodes.append(
                WorkerNode(
                    name=pod.name,
                    group=pod.group,
                    used={"CPU": pod.used} if pod.tasks else {},
                    idle_s=0.0 if pod.tasks else now - pod.idle_since,
                    deleting=pod.gone_at is not None,
                    reclaim_notice=pod.notice_until is not None,
                )
            )
        demand = tuple({"CPU": cpu} for cpu, _ in cluster.queue)
        return ClusterView(nodes=tuple(nodes), starting=starting, demand=demand)

    def step(self, cluster: Cluster, now: float) -> Applied:
        self.clock.set(now)
        unblocked = {}
        if cluster.pending_deletes():
            preview = self.policy.preview(self.view(cluster, now, hide_deleting=True))
            unblocked = {c.group: c.launched for c in preview if c.launched > 0}
        seen = len(self.policy.events)
        changes = self.policy.decide(self.view(cluster, now))
        released: dict[str, list[str]] = {}
        reclaimed: dict[str, list[str]] = {}
        for event in self.policy.events[seen:]:
            into = reclaimed if event.cause == "reclaim" else released
            if event.workers_to_delete:
                into.setdefault(event.group, []).extend(event.workers_to_delete)
        for change in changes:
            cluster.replicas[change.group] = change.replicas
            cluster.to_delete[change.group] |= set(change.workers_to_delete)
        launched = {c.group: c.launched for c in changes if c.launched > 0}
        return Applied(
            launched=launched,
            released=released,
            reclaimed=reclaimed,
            unblocked_launches=unblocked or launched,
        )


class RayV2Autoscaler:
    """Ray 2.60's ``ResourceDemandScheduler``, applied as Ray's KubeRay provider does."""

    name = "ray_v2"

    def __init__(self, pools: Sequence[NodePool], config: SimConfig) -> None:
        from ray.autoscaler.v2.instance_manager.config import NodeTypeConfig
        from ray.autoscaler.v2.scheduler import ResourceDemandScheduler

        self.config = config
        self.scheduler = ResourceDemandScheduler()
        self.node_types = {
            p.name: NodeTypeConfig(
                name=p.name,
                min_worker_nodes=p.min_nodes,
                max_worker_nodes=p.max_nodes,
                priority=p.priority,
                resources=dict(p.node_shape),
            )
            for p in pools
        }

    def step(self, cluster: Cluster, now: float) -> Applied:
        from ray.autoscaler.v2.scheduler import SchedulingRequest
        from ray.autoscaler.v2.schema import AutoscalerInstance
        from ray.autoscaler.v2.utils import ResourceRequestUtil

        # Generated protobuf modules: their names are made at import time (no stubs).
        from ray.core.generated.autoscaler_pb2 import NodeState  # type: ignore[attr-defined]
        from ray.core.generated.instance_manager_pb2 import (  # type: ignore[attr-defined]
            Instance,
        )

        instances = []
        for pod in cluster.pods.values():
            if pod.gone_at is not None:  # TERMINATING: not schedulable
                continue
            up = pod.up(now)
            im = Instance(
                instance_type=pod.group,
                status=Instance.RAY_RUNNING if up else Instance.ALLOCATED,
                instance_id=pod.name,
                node_id=pod.name if up else "",
                cloud_instance_id=pod.name,
            )
            total = cluster.cpu(pod.group)
            node = (
                NodeState(
                    ray_node_type_name=pod.group,
                    node_id=pod.name.encode(),
                    instance_id=pod.name,
                    total_resources={"CPU": total},
                    available_resources={"CPU": total - pod.used},
                    idle_duration_ms=0 if pod.tasks else int((now - pod.idle_since) * 1000),
                )
                if up
                else None
            )
            instances.append(
                AutoscalerInstance(im_instance=im, ray_node=node, cloud_instance_id=pod.name)
            )
        requests = [ResourceRequestUtil.make({"CPU": cpu}) for cpu, _ in cluster.queue]
        reply = self.scheduler.schedule(
            SchedulingRequest(
                disable_launch_config_check=True,
                node_type_configs=self.node_types,
                idle_timeout_s=self.config.idle_timeout_s,
                resource_requests=ResourceRequestUtil.group_by_count(requests),
                current_instances=instances,
            )
        )
        wanted: dict[str, int] = {}
        for launch in reply.to_launch:
            wanted[launch.instance_type] = wanted.get(launch.instance_type, 0) + launch.count
        terminate: dict[str, list[str]] = {}
        for request in reply.to_terminate:
            terminate.setdefault(request.instance_type, []).append(request.instance_id)
        if cluster.pending_deletes():  # KubeRayProvider.launch/terminate refuse the request
            return Applied(launched={}, released={}, unblocked_launches=wanted)
        for g, count in wanted.items():
            cluster.replicas[g] += count
        for g, names in terminate.items():
            cluster.replicas[g] -= len(names)
            cluster.to_delete[g] |= set(names)
        return Applied(launched=wanted, released=terminate, unblocked_launches=wanted)


@dataclass(frozen=True, kw_only=True)
class SimResult:
    """One autoscaler on the trace: its records, for the metrics and the plot."""

    autoscaler: str
    """``tideflow`` or ``ray_v2``."""
    ticks: list[dict[str, Any]]
    """Per tick: time, pods per group (not deleting, starting included), demand CPU, queued
    CPU, whether a tidal pod was up, launches and releases, whether homeless work fits."""
    events: list[dict[str, Any]]
    """Scale events: time, group, direction, count, cause (demand, idle or reclaim)."""
    reclaim: dict[str, Any]
    """The reclaim: time, group, pods."""
    totals: dict[str, Any]
    """Tasks completed, tasks lost to the reclaim, tasks still queued at the end."""


def make_tasks(config: SimConfig) -> list[list[tuple[float, float]]]:
    """Arrivals per tick: (CPU, run time) of each task; the same for the same seed."""
    rng = np.random.default_rng(config.seed)
    ticks = round(config.duration_s / config.tick_s)
    mean_cpu = 0.7 * 4 + 0.3 * 2
    out = []
    for k in range(ticks):
        f = k / ticks
        level = (
            0.05 + 0.95 * f / 0.2
            if f < 0.2
            else 1.0
            if f < 0.5
            else 1.0 - 0.95 * (f - 0.5) / 0.25
            if f < 0.75
            else 0.05
        )
        rate = level * config.peak_cpu / (mean_cpu * config.task_mean_s)
        n = int(rng.poisson(rate * config.tick_s))
        cpus = np.where(rng.random(n) < 0.7, 4.0, 2.0)
        runs = np.maximum(config.tick_s, rng.exponential(config.task_mean_s, n))
        out.append([(float(c), float(r)) for c, r in zip(cpus, runs, strict=True)])
        if k == math.floor(config.burst_at * ticks):
            out[-1] += [
                (4.0, config.tick_s + float(r))
                for r in rng.exponential(config.task_mean_s, config.burst_tasks)
            ]
    return out


def simulate(
    autoscaler: Autoscaler, config: SimConfig, pools: Sequence[NodePool] = POOLS
) -> SimResult:
    """Replay the seeded trace through a cluster scaled by ``autoscaler``."""
    cluster = Cluster(pools, config)
    tidal = next(p.name for p in pools if p.tidal)
    reclaim_at = math.floor(config.reclaim_at * config.duration_s / config.tick_s)
    ticks: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    reclaim: dict[str, Any] = {}
    for k, arrivals in enumerate(make_tasks(config)):
        now = k * config.tick_s
        cluster.reconcile(now)
        cluster.run_tasks(now, arrivals)
        if k == reclaim_at:
            pods = cluster.reclaim(now, tidal, config.reclaim_pods)
            reclaim = {"time": now, "group": tidal, "pods": pods}
        tidal_up = any(
            p.group == tidal and p.up(now) and p.gone_at is None and p.notice_until is None
            for p in cluster.pods.values()
        )
        blocked = cluster.pending_deletes()
        applied = autoscaler.step(cluster, now)
        cluster.reconcile(now)
        events += [
            {"time": now, "group": g, "direction": way, "count": len(what), "cause": cause}
            for way, cause, per_group in (
                ("up", "demand", {g: [g] * n for g, n in applied.launched.items()}),
                ("down", "idle", applied.released),
                ("down", "reclaim", applied.reclaimed),
            )
            for g, what in per_group.items()
        ]
        ticks.append(
            {
                "time": now,
                "pods": {
                    g: sum(1 for p in cluster.pods.values() if p.group == g and p.gone_at is None)
                    for g in cluster.pools
                },
                "demand_cpu": sum(p.used for p in cluster.pods.values())
                + sum(c for c, _ in cluster.queue),
                "queued_cpu": sum(c for c, _ in cluster.queue),
                "replicas": dict(cluster.replicas),
                "tidal_up": tidal_up,
                "pending_delete_groups": sorted(blocked),
                "launched": dict(applied.launched),
                "unblocked_launches": dict(applied.unblocked_launches),
                "released": {g: len(v) for g, v in applied.released.items()},
                "homeless_fit": cluster.homeless_fit(now),
            }
        )
    totals = {
        "tasks_completed": cluster.completed,
        "tasks_lost_to_reclaim": cluster.lost_tasks,
        "tasks_queued_at_end": len(cluster.queue),
    }
    return SimResult(
        autoscaler=autoscaler.name, ticks=ticks, events=events, reclaim=reclaim, totals=totals
    )


def compare(config: SimConfig, pools: Sequence[NodePool] = POOLS) -> dict[str, SimResult]:
    """Both autoscalers on the same trace: ``{"tideflow": …, "ray_v2": …}``."""
    runs: list[Autoscaler] = [TideflowAutoscaler(pools, config), RayV2Autoscaler(pools, config)]
    return {a.name: simulate(a, config, pools) for a in runs}
