"""Prometheus metrics of the external autoscaler, in a registry of its own."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

__all__ = ["AutoscalerMetrics", "MetricNames"]


class MetricNames:
    """Metric names (without the ``_total`` suffix Prometheus adds to counters)."""

    SCALE_EVENTS = "tideflow_cluster_scale_events"
    REPLICAS = "tideflow_cluster_replicas"
    PODS = "tideflow_cluster_pods"
    PENDING_DELETES = "tideflow_cluster_pending_deletes"
    SCALE_HOLDS = "tideflow_cluster_scale_holds"
    PENDING_DEMAND = "tideflow_cluster_pending_demand_bundles"
    TICKS = "tideflow_cluster_ticks"
    TICK_ERRORS = "tideflow_cluster_tick_errors"
    TICK_SECONDS = "tideflow_cluster_tick_duration_seconds"


class AutoscalerMetrics:
    """Scale events per pool and direction, holds (the policy's back-pressure reasons) per
    pool and code, replicas and pods per pool, pending deletes, pending demand, ticks and tick
    errors by kind."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.scale_events = Counter(
            MetricNames.SCALE_EVENTS,
            "Replica changes the autoscaler patched, per pool and direction",
            ["pool", "direction"],
            registry=r,
        )
        self.scale_holds = Counter(
            MetricNames.SCALE_HOLDS,
            "Ticks on which the policy held a pool back, per pool and reason (anti_jitter, "
            "reclaim_hold, no_room, tidal_first; pool '' for demand no pool can take)",
            ["pool", "code"],
            registry=r,
        )
        self.replicas = Gauge(
            MetricNames.REPLICAS,
            "The worker group's replicas after the last tick",
            ["pool"],
            registry=r,
        )
        self.pods = Gauge(
            MetricNames.PODS,
            "Pods of the worker group by state (running, starting, deleting, reclaim_notice)",
            ["pool", "state"],
            registry=r,
        )
        self.pending_deletes = Gauge(
            MetricNames.PENDING_DELETES,
            "Pods named in workersToDelete that still exist",
            ["pool"],
            registry=r,
        )
        self.pending_demand = Gauge(
            MetricNames.PENDING_DEMAND, "Resource bundles Ray could not place", registry=r
        )
        self.ticks = Counter(MetricNames.TICKS, "Autoscaler ticks run", registry=r)
        self.tick_errors = Counter(
            MetricNames.TICK_ERRORS,
            "Ticks that failed, by kind (kube, conflict, demand, policy, safety)",
            ["kind"],
            registry=r,
        )
        self.tick_seconds = Histogram(
            MetricNames.TICK_SECONDS,
            "Duration of one autoscaler tick",
            registry=r,
        )

    def exposition(self) -> str:
        """The Prometheus text format of the metrics."""
        return generate_latest(self.registry).decode()

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve ``http://addr:port/metrics``; returns the server (``.shutdown()`` stops it)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
