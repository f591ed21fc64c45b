"""Figures and goals of the streaming benchmark from its runs' records (pure, no Ray).

A run's record is :meth:`tideflow_tools.streaming_bench.Launch.summary` (or the same keys
from :func:`~tideflow_tools.streaming_bench.run_engine`): ``ok``, ``error``, ``rows_per_s``,
``wall_s``, ``output``, ``gpu_like_*`` and ``engine_metrics``. A run that failed leaves its
figures out and its error in; every goal it feeds is written as missed, never dropped.
"""

from __future__ import annotations

import math
from typing import Any

from tideflow_tools.bench import Goal, at_least, at_most

__all__ = [
    "CONFIGS",
    "DEFINITIONS",
    "GOALS",
    "build",
    "crash_figures",
    "format_table",
    "p99",
    "pick_median",
]

CONFIGS = ("ray_data", "ray_data_ckpt", "tideflow", "tideflow_ckpt")
"""The throughput runs: each engine with checkpoints off and on."""

GOALS = {
    "throughput_ratio_ckpt_on": (at_least, 1.2),
    "checkpoint_overhead_pct": (at_most, 3.0),
    "gpu_busy_fraction": (at_least, 0.95),
}

DEFINITIONS = {
    "rows_per_s": "rows in the output ÷ seconds from just before the read to the return of "
    "the sink's last commit (Ray's own start not counted; actor starts are)",
    "phases_s": "where a run's time went: ray_start (process start to just before the read, "
    "not counted in rows/s), to_first_gpu_like_batch (actor starts, first batches), "
    "gpu_like_span (first to last GPU-like batch), after_last_gpu_like_batch (drain, commit)",
    "throughput_ratio_ckpt_on": "Tideflow with checkpoints every 3 s ÷ the better of Ray Data "
    "without and with its own checkpointing (rows/s)",
    "throughput_ratio_ckpt_off": "Tideflow without checkpoints ÷ the same Ray Data figure",
    "checkpoint_overhead_pct": "(Tideflow rows/s without − with checkpoints) ÷ without × 100",
    "ray_data_checkpoint_overhead_pct": "the same for Ray Data's row-id checkpointing",
    "checkpoint_p99_s": "99th percentile (nearest rank) of Tideflow's checkpoint durations "
    "(barrier to durable) in the checkpoints-on run",
    "gpu_like_busy_fraction": "Σ busy time of the one-slot GPU-like stage ÷ (last batch end − "
    "first batch start), from the intervals the stage logged; the goal uses the Tideflow run "
    "with checkpoints on",
    "rerun_gpu_like_rows": "rows the re-run (same job id, after a SIGKILL of the whole process "
    "group at ~50 % of the rows through the GPU-like stage) pushed through the GPU-like stage",
    "killed_run_committed_rows": "rows in the sink's visible output right after the kill",
    "rows_processed_twice": "rows through the GPU-like stage in the killed run + in the re-run "
    "− input rows: work done before the crash and done again",
    "first_output_after_restart_s": "seconds from launching the re-run (a fresh process, Ray "
    "start included) to its first output: the first GPU-like batch start or the first new "
    "committed output file, whichever came first; from_ray_ready_s counts from just before "
    "the read instead",
    "output": "ids read back from the sink's visible Parquet files vs 0..rows-1: missing and "
    "duplicate ids",
}


def p99(values: list[float]) -> float | None:
    """The 99th percentile by nearest rank (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def pick_median(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rows/s among those that succeeded (the first run if none did),
    with every repeat's rows/s under ``repeats_rows_per_s``."""
    ok = sorted((s for s in summaries if s.get("ok")), key=lambda s: s["rows_per_s"])
    chosen = dict(ok[(len(ok) - 1) // 2] if ok else summaries[0])
    chosen["repeats_rows_per_s"] = [s.get("rows_per_s") for s in summaries]
    return chosen


def crash_figures(
    killed: dict[str, Any],
    resume: dict[str, Any],
    *,
    first_output: dict[str, float | None],
    rows: int,
) -> dict[str, Any]:
    """The crash-and-resume figures of one engine from its killed run and its re-run."""
    killed_ok = killed.get("killed_after_s") is not None
    error = None
    if not killed_ok:
        error = "the first run was not killed mid-way: " + str(
            killed.get("error") or "it finished before reaching the kill point"
        )
    elif not resume.get("ok"):
        error = f"the re-run failed: {resume.get('error')}"
    figures: dict[str, Any] = {
        "ok": error is None,
        "error": error,
        "killed_after_s": killed.get("killed_after_s"),
        "killed_run_gpu_like_rows": killed.get("gpu_like_rows", 0),
        "killed_run_committed_rows": killed.get("committed_rows"),
        "rerun_gpu_like_rows": resume.get("gpu_like_rows", 0) if resume.get("ok") else None,
        "rows_processed_twice": None,
        "first_output_after_restart_s": first_output.get("from_restart_s"),
        "first_output_after_ray_ready_s": first_output.get("from_ray_ready_s"),
        "rerun_wall_s": resume.get("wall_s"),
        "output": resume.get("output"),
    }
    if error is None:
        figures["rows_processed_twice"] = max(
            0, killed.get("gpu_like_rows", 0) + resume.get("gpu_like_rows", 0) - rows
        )
        output = resume.get("output") or {}
        if not output.get("exact", False):
            figures["ok"] = False
            figures["error"] = (
                f"output not exact: {output.get('missing')} missing, "
                f"{output.get('duplicates')} duplicate ids"
            )
    return figures


def _rate(run: dict[str, Any]) -> float | None:
    return float(run["rows_per_s"]) if run.get("ok") and run.get("rows_per_s") else None


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return round(top / bottom, 4) if top is not None and bottom else None


def _overhead(off: float | None, on: float | None) -> float | None:
    return round((off - on) / off * 100, 3) if off and on is not None else None


def build(
    runs: dict[str, dict[str, Any]], crash: dict[str, dict[str, Any]], *, rows: int
) -> tuple[dict[str, Any], dict[str, Goal], dict[str, str]]:
    """``(metrics, goals, notes)`` from the chosen run per config and the crash figures per
    engine. ``notes`` says why a goal could not be measured (written as missed)."""
    rates = {name: _rate(runs.get(name, {})) for name in CONFIGS}
    ray_best = max((r for r in (rates["ray_data"], rates["ray_data_ckpt"]) if r), default=None)
    tide_ckpt = runs.get("tideflow_ckpt", {})
    durations = (tide_ckpt.get("engine_metrics") or {}).get("checkpoint_durations_s") or []
    values: dict[str, float | None] = {
        "throughput_ratio_ckpt_on": _ratio(rates["tideflow_ckpt"], ray_best),
        "checkpoint_overhead_pct": _overhead(rates["tideflow"], rates["tideflow_ckpt"]),
        "gpu_busy_fraction": tide_ckpt.get("gpu_like_busy_fraction") if _rate(tide_ckpt) else None,
    }
    metrics: dict[str, Any] = {"rows": rows}
    metrics.update({name: runs.get(name, {"ok": False, "error": "not run"}) for name in CONFIGS})
    metrics.update(
        {
            "throughput_ratio_ckpt_on": values["throughput_ratio_ckpt_on"],
            "throughput_ratio_ckpt_off": _ratio(rates["tideflow"], ray_best),
            "checkpoint_overhead_pct": values["checkpoint_overhead_pct"],
            "ray_data_checkpoint_overhead_pct": _overhead(
                rates["ray_data"], rates["ray_data_ckpt"]
            ),
            "checkpoints": len(durations) if rates["tideflow_ckpt"] else None,
            "checkpoint_p99_s": p99(durations) if rates["tideflow_ckpt"] else None,
            "gpu_like_busy_fraction": {
                name: runs[name].get("gpu_like_busy_fraction") if rates[name] else None
                for name in CONFIGS
                if name in runs
            },
            "crash_resume": crash,
            "rows_reprocessed": {
                engine: figures.get("rerun_gpu_like_rows") for engine, figures in crash.items()
            },
            "rows_processed_twice": {
                engine: figures.get("rows_processed_twice") for engine, figures in crash.items()
            },
            "first_output_after_restart_s": {
                engine: figures.get("first_output_after_restart_s")
                for engine, figures in crash.items()
            },
        }
    )
    goals: dict[str, Goal] = {}
    notes: dict[str, str] = {}
    for name, (rule, bound) in GOALS.items():
        value = values[name]
        if value is None:
            goals[name] = Goal(value=0.0, target=rule(0.0, bound).target, met=False)
            notes[name] = "not measured, written as missed: " + _why(name, runs)
        else:
            goals[name] = rule(value, bound)
    return metrics, goals, notes


def _why(goal: str, runs: dict[str, dict[str, Any]]) -> str:
    needed = {
        "throughput_ratio_ckpt_on": ("tideflow_ckpt", "ray_data", "ray_data_ckpt"),
        "checkpoint_overhead_pct": ("tideflow", "tideflow_ckpt"),
        "gpu_busy_fraction": ("tideflow_ckpt",),
    }[goal]
    failed = [
        f"{name}: {runs.get(name, {}).get('error') or 'not run'}"
        for name in needed
        if not _rate(runs.get(name, {}))
    ]
    return "; ".join(failed) or "no figure"


def _fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        return format(value, spec)
    return str(value)


def format_table(metrics: dict[str, Any], goals: dict[str, Goal]) -> str:
    """A short plain-text summary: one line per run, crash-and-resume per engine, goals."""
    lines = [f"{'run':<15}{'rows/s':>9}{'wall s':>8}{'1st s':>7}{'span s':>8}{'busy':>7}  output"]
    for name in CONFIGS:
        run = metrics.get(name) or {}
        if not run.get("ok"):
            lines.append(f"{name:<15}{'FAILED':>9}  {str(run.get('error'))[:90]}")
            continue
        out = run.get("output") or {}
        phases = run.get("phases_s") or {}
        lines.append(
            f"{name:<15}{_fmt(run.get('rows_per_s')):>9}{_fmt(run.get('wall_s'), '.1f'):>8}"
            f"{_fmt(phases.get('to_first_gpu_like_batch'), '.1f'):>7}"
            f"{_fmt(phases.get('gpu_like_span'), '.1f'):>8}"
            f"{_fmt(run.get('gpu_like_busy_fraction'), '.3f'):>7}  "
            f"{'exact' if out.get('exact') else out}"
        )
    lines.append(f"{'crash/resume':<15}{'re-run rows':>12}{'twice':>8}{'1st out s':>10}  output")
    for engine, figures in (metrics.get("crash_resume") or {}).items():
        if not figures.get("ok") and figures.get("rerun_gpu_like_rows") is None:
            lines.append(f"{engine:<15}{'FAILED':>12}  {str(figures.get('error'))[:90]}")
            continue
        out = figures.get("output") or {}
        verdict = (
            "exact"
            if out.get("exact")
            else f"{out.get('missing')} missing, {out.get('duplicates')} duplicates"
        )
        lines.append(
            f"{engine:<15}{_fmt(figures.get('rerun_gpu_like_rows')):>12}"
            f"{_fmt(figures.get('rows_processed_twice')):>8}"
            f"{_fmt(figures.get('first_output_after_restart_s'), '.2f'):>10}  {verdict}"
        )
    extra = (
        f"checkpoint p99 {_fmt(metrics.get('checkpoint_p99_s'), '.3f')} s over "
        f"{_fmt(metrics.get('checkpoints'), 'd')} checkpoints; Ray Data's checkpoint overhead "
        f"{_fmt(metrics.get('ray_data_checkpoint_overhead_pct'), '.1f')} %"
    )
    lines.append(extra)
    lines.append("(1st s: read start → first GPU-like batch; span s: first → last GPU-like batch)")
    for name, goal in goals.items():
        lines.append(
            f"goal {name}: {goal.value:g} (target {goal.target}): {'met' if goal.met else 'MISSED'}"
        )
    return "\n".join(lines)
