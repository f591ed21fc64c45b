"""The Grafana dashboard queries only metrics that Tideflow exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tideflow.cluster import AutoscalerMetrics
from tideflow.core.observability import Metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "tideflow-cluster.json"


def _job_exposition_names() -> set[str]:
    """The metric names a job's real Prometheus exposition holds (one stage, every figure)."""
    from tideflow.streaming._metrics import JobResult, StageMetrics
    from tideflow.streaming._prometheus import exposition

    stage = StageMetrics(name="s", backpressure_reasons={"queue": 1.0}, actor_bundle={"CPU": 1})
    text = exposition(JobResult(job_id="j", stages={"s": stage}))
    return {line.split("{")[0].split()[0] for line in text.splitlines() if line[:1] not in "#"}


def _exported() -> set[str]:
    names = {v for k, v in vars(Metrics).items() if k.isupper()} | {"tideflow_dead_letters"}
    names |= _job_exposition_names()
    for metric in AutoscalerMetrics().registry.collect():
        names.add(metric.name)
        names |= {f"{metric.name}{s}" for s in ("_total", "_bucket", "_count", "_sum")}
    return names


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries = [
        v["query"]["query"]
        for v in dashboard["templating"]["list"]
        if "query" in v and isinstance(v["query"], dict)
    ]
    used = {m for text in exprs + queries for m in re.findall(r"\btideflow_[a-z_]+", text)}
    assert used, "the dashboard queries nothing"
    assert used - _exported() == set()
    assert {
        "tideflow_cluster_scale_events_total",
        "tideflow_stage_backpressure_seconds_total",
        "tideflow_stage_backpressure_reason_seconds_total",
        "tideflow_pool_actors",
    } <= used


def test_dashboard_panels_have_unique_ids_and_titles() -> None:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["title"] for p in panels)
