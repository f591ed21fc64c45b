"""The external autoscaler of a multi-pool RayCluster.

One tick: read the RayCluster and its worker pods from the Kubernetes API and the demand from
the demand reader → :meth:`MultiPoolPolicy.decide` → one RFC 6902 patch of the RayCluster
(:mod:`tideflow.cluster.patches`), checked before it is sent. A tick that fails (API down,
a conflicting change, demand unreadable, a patch that breaks a rule) changes nothing, is
counted in ``tideflow_cluster_tick_errors_total{kind}`` and logged; the next tick starts over
from what the API says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tideflow.cluster.config import ClusterConfig
from tideflow.cluster.demand import DemandReader
from tideflow.cluster.errors import (
    ClusterConfigError,
    ClusterError,
    DemandError,
    KubeConflictError,
    KubeError,
    PatchSafetyError,
)
from tideflow.cluster.kube import KubeClient
from tideflow.cluster.metrics import AutoscalerMetrics
from tideflow.cluster.patches import GroupState, ScaleStep, build_patch, check_patch, observe
from tideflow.cluster.policy import ClusterView, GroupChange
from tideflow.cluster.render import worker_selector
from tideflow.core.clock import Clock, MonotonicClock
from tideflow.core.observability import get_logger

__all__ = ["Autoscaler", "Policy", "TickResult", "default_policy"]


class Policy(Protocol):
    """What the autoscaler asks each tick (:class:`tideflow.cluster.policy.MultiPoolPolicy`)."""

    def decide(self, view: ClusterView) -> list[GroupChange]: ...


def default_policy(config: ClusterConfig, *, clock: Clock | None = None) -> Policy:
    """The multi-pool policy for ``config``'s pools with its ``policy`` settings."""
    from tideflow.cluster.policy import MultiPoolPolicy, PolicyConfig

    try:
        settings = PolicyConfig(**dict(config.policy))
    except (TypeError, ValueError) as e:
        raise ClusterConfigError(f"policy: {e}") from None
    return MultiPoolPolicy(config.node_pools(), config=settings, clock=clock)


@dataclass(frozen=True, kw_only=True)
class TickResult:
    """What one tick saw and did."""

    time: float
    """The autoscaler's clock at the start of the tick."""
    steps: tuple[ScaleStep, ...] = ()
    """Changes patched (empty when nothing changed or the tick failed)."""
    patch: tuple[dict[str, Any], ...] = ()
    """The JSON patch built this tick (sent unless the autoscaler is a dry run)."""
    groups: dict[str, GroupState] = field(default_factory=dict)
    """The groups as read at the start of the tick."""
    pending_bundles: int = 0
    """Demand bundles read."""
    error: str | None = None
    """Why the tick failed, or None."""
    error_kind: str | None = None
    """kube, conflict, demand, policy or safety."""

    @property
    def ok(self) -> bool:
        return self.error is None


def _error_kind(error: Exception) -> str:
    if isinstance(error, KubeConflictError):
        return "conflict"
    if isinstance(error, KubeError):
        return "kube"
    if isinstance(error, DemandError):
        return "demand"
    if isinstance(error, PatchSafetyError):
        return "safety"
    return "policy"


class Autoscaler:
    """Keeps one RayCluster's worker groups at what the policy decides."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        kube: KubeClient,
        demand: DemandReader,
        policy: Policy | None = None,
        clock: Clock | None = None,
        metrics: AutoscalerMetrics | None = None,
        dry_run: bool = False,
    ) -> None:
        self.config = config
        self.kube = kube
        self.demand = demand
        self.clock = clock if clock is not None else MonotonicClock()
        self.policy = policy if policy is not None else default_policy(config, clock=self.clock)
        self.metrics = metrics if metrics is not None else AutoscalerMetrics()
        self.dry_run = dry_run
        """Decide and log, but send no patch."""
        self.ticks = 0
        self._groups = [p.name for p in config.pools]
        self._log = get_logger(
            "tideflow.cluster.autoscaler", cluster=config.name, namespace=config.namespace
        )

    def tick(self) -> TickResult:
        """Read, decide, patch once. Never raises a :class:`ClusterError`: a failure is in the
        result (and the metrics and the log)."""
        self.ticks += 1
        now = self.clock.now()
        started = time.perf_counter()
        self.metrics.ticks.inc()
        states: dict[str, GroupState] = {}
        try:
            raycluster = self.kube.get_raycluster(self.config.namespace, self.config.name)
            pods = self.kube.list_pods(self.config.namespace, worker_selector(self.config))
            demand = self.demand()
            view, states = observe(raycluster, pods, demand, self._groups)
            changes = self._decide(view)
            ops, steps = build_patch(changes, states)
            if ops:
                check_patch(raycluster, ops, states)
                if not self.dry_run:
                    self.kube.patch_raycluster(self.config.namespace, self.config.name, ops)
        except ClusterError as e:
            kind = _error_kind(e)
            self.metrics.tick_errors.labels(kind=kind).inc()
            self._log.warning("autoscaler.tick_failed", tick=self.ticks, kind=kind, error=str(e))
            return TickResult(time=now, groups=states, error=str(e), error_kind=kind)
        finally:
            self.metrics.tick_seconds.observe(time.perf_counter() - started)
        self._record(states, steps, len(demand.bundles))
        self._log.info(
            "autoscaler.ticked",
            tick=self.ticks,
            pending_bundles=len(demand.bundles),
            pools=self._summary(states, steps),
            patched=bool(ops) and not self.dry_run,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return TickResult(
            time=now,
            steps=tuple(steps),
            patch=tuple(ops),
            groups=states,
            pending_bundles=len(demand.bundles),
        )

    def run(
        self,
        *,
        interval_s: float | None = None,
        once: bool = False,
        stop: threading.Event | None = None,
        on_tick: Callable[[TickResult], None] | None = None,
    ) -> TickResult:
        """Tick every ``interval_s`` (the config's by default) until ``stop`` is set, or once
        with ``once``; returns the last tick's result. A failed tick does not stop the loop."""
        interval = interval_s if interval_s is not None else self.config.autoscaler.interval_s
        stop = stop if stop is not None else threading.Event()
        self._log.info("autoscaler.started", interval_s=interval, once=once, dry_run=self.dry_run)
        try:
            while True:
                result = self.tick()
                if on_tick is not None:
                    on_tick(result)
                if once or stop.wait(interval):
                    return result
        finally:
            self._log.info("autoscaler.stopped", ticks=self.ticks)

    # -- helpers -------------------------------------------------------------------------------

    def _decide(self, view: ClusterView) -> Sequence[GroupChange]:
        try:
            return self.policy.decide(view)
        except ClusterError:
            raise
        except Exception as e:  # a policy bug must not kill the loop; it is counted and logged
            self._log.exception("policy.failed")
            raise ClusterError(f"the policy failed: {type(e).__name__}: {e}") from e

    def _record(self, states: dict[str, GroupState], steps: list[ScaleStep], bundles: int) -> None:
        m = self.metrics
        m.pending_demand.set(bundles)
        targets = {s.pool: s.to_replicas for s in steps}
        for name, state in states.items():
            target = state.replicas if self.dry_run else targets.get(name, state.replicas)
            m.replicas.labels(pool=name).set(target)
            m.pending_deletes.labels(pool=name).set(len(state.pending_deletes))
            for what in ("running", "starting", "deleting", "reclaim_notice"):
                m.pods.labels(pool=name, state=what).set(getattr(state, what))
        for hold in getattr(self.policy, "holds", ()):
            m.scale_holds.labels(pool=hold.group, code=str(hold.code)).inc()
            self._log.debug("pool.held", pool=hold.group, code=str(hold.code), reason=hold.reason)
        for step in steps:
            if not self.dry_run:
                m.scale_events.labels(pool=step.pool, direction=step.direction).inc()
            self._log.info(
                "group.patched",
                pool=step.pool,
                direction=step.direction,
                from_size=step.from_replicas,
                to_size=step.to_replicas,
                workers_to_delete=list(step.workers_to_delete),
                reason=step.reason,
                dry_run=self.dry_run,
            )

    @staticmethod
    def _summary(states: dict[str, GroupState], steps: list[ScaleStep]) -> str:
        targets = {s.pool: s.to_replicas for s in steps}
        parts = []
        for name, s in states.items():
            arrow = f"→{targets[name]}" if name in targets and targets[name] != s.replicas else ""
            extra = f" -{len(s.pending_deletes)}" if s.pending_deletes else ""
            parts.append(f"{name} {s.running}+{s.starting}/{s.replicas}{arrow}{extra}")
        return " | ".join(parts)
