"""Prometheus exposition of a job's metrics (the same figures as :class:`JobResult`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tideflow.core.observability import Metrics
from tideflow.streaming._metrics import JobResult

__all__ = ["JobCollector", "exposition", "serve_metrics"]


class JobCollector(Collector):
    """Reads a live :class:`JobResult` at every scrape."""

    def __init__(self, result: Callable[[], JobResult]) -> None:
        self._result = result

    def collect(self) -> Iterator[Any]:
        r = self._result()
        job = [r.job_id]
        rows_in = CounterMetricFamily(
            Metrics.STAGE_ROWS_IN, "Rows a stage received", labels=["job", "stage"]
        )
        rows_out = CounterMetricFamily(
            Metrics.STAGE_ROWS_OUT, "Rows a stage emitted", labels=["job", "stage"]
        )
        pressure = CounterMetricFamily(
            Metrics.STAGE_BACKPRESSURE_SECONDS,
            "Seconds a stage was held back by a full downstream queue",
            labels=["job", "stage"],
        )
        busy = GaugeMetricFamily(
            Metrics.POOL_UTILIZATION, "Busy fraction of a stage", labels=["job", "stage"]
        )
        queue = GaugeMetricFamily(
            Metrics.POOL_QUEUED, "Batches waiting for a stage", labels=["job", "stage"]
        )
        actors = GaugeMetricFamily(
            Metrics.POOL_ACTORS,
            "Actors of a stage taking work (not those leaving a draining node)",
            labels=["job", "stage"],
        )
        limits = GaugeMetricFamily(
            "tideflow_pool_max_actors", "The most actors a stage may have", labels=["job", "stage"]
        )
        bundle = GaugeMetricFamily(
            "tideflow_pool_actor_resources",
            "What each actor of a stage reserves, by Ray resource name",
            labels=["job", "stage", "resource"],
        )
        scales = CounterMetricFamily(
            Metrics.SCALE_EVENTS, "Resizes of a stage's pool", labels=["job", "stage"]
        )
        by_reason = CounterMetricFamily(
            "tideflow_stage_backpressure_reason_seconds",
            "Seconds a stage (or the source) was held back, by reason",
            labels=["job", "stage", "reason"],
        )
        restarts = CounterMetricFamily(
            "tideflow_job_restarts",
            "Restarts from the last checkpoint after a lost part, or moves off a draining node",
            labels=["job"],
        )
        restarts.add_metric(job, r.restarts)
        for name, m in [*r.stages.items(), ("source", r.source)]:
            for reason, seconds in m.backpressure_reasons.items():
                by_reason.add_metric([*job, name, reason], seconds)
        for name, m in r.stages.items():
            labels = [*job, name]
            rows_in.add_metric(labels, m.rows_in)
            rows_out.add_metric(labels, m.rows_out)
            pressure.add_metric(labels, m.backpressure_s)
            busy.add_metric(labels, m.busy_fraction)
            queue.add_metric(labels, m.queue_depth)
            actors.add_metric(labels, m.actors)
            limits.add_metric(labels, m.actors_max)
            for resource, amount in m.actor_bundle.items():
                bundle.add_metric([*labels, resource], amount)
            scales.add_metric(labels, len(m.scale_events))
        yield from (rows_in, rows_out, pressure, by_reason, busy, queue, actors, limits, bundle)
        yield from (scales, restarts)
        done = CounterMetricFamily(
            Metrics.CHECKPOINTS_COMPLETED, "Checkpoints completed", labels=["job"]
        )
        done.add_metric(job, len(r.checkpoints))
        yield done
        dead = CounterMetricFamily(
            "tideflow_dead_letters", "Rows sent to the dead-letter output", labels=["job"]
        )
        dead.add_metric(job, r.dead_letters)
        yield dead


def exposition(result: JobResult) -> str:
    """The Prometheus text format of ``result`` (for a push gateway or a test)."""
    registry = CollectorRegistry()
    registry.register(JobCollector(lambda: result))
    return generate_latest(registry).decode()


def serve_metrics(result: Callable[[], JobResult], port: int, addr: str = "127.0.0.1") -> Any:
    """Serve the job's metrics on ``http://addr:port/metrics``; returns the server."""
    registry = CollectorRegistry()
    registry.register(JobCollector(result))
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
