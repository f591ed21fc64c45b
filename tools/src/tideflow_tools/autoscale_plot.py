"""The autoscaler benchmark's figure: load, pool size and backlog of each policy over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tideflow_tools.autoscale_sim import Comparison

__all__ = ["plot_comparison"]

_COLORS = {"ray_data": "tab:orange", "tideflow": "tab:blue"}
_LABELS = {"ray_data": "Ray Data rule (2.60)", "tideflow": "Tideflow PoolScaler"}


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Draw the three panels into ``path`` (PNG) and return it."""
    trace = comparison.trace
    dt = trace.config.tick_s
    t = np.arange(trace.ticks) * dt
    per_s = max(1, round(1.0 / dt))
    needed = trace.rate * trace.config.service_mean_s
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True, constrained_layout=True)
    load, size, backlog = axes
    load.plot(t, trace.rate, color="0.75", linewidth=0.5, label="arrival rate (items/s)")
    smooth = np.convolve(trace.rate, np.ones(per_s) / per_s, mode="same")
    load.plot(t, smooth, color="0.2", linewidth=1.0, label="1 s mean")
    load.set_ylabel("items / s")
    load.set_title(
        f"Load trace (seed {trace.seed}): bursty, jittery, "
        f"{trace.items} items, cold start {comparison.model.cold_start_s:g} s"
    )
    load.legend(loc="upper right")
    size.plot(
        t,
        np.convolve(needed, np.ones(per_s) / per_s, mode="same"),
        color="0.6",
        linewidth=0.8,
        label="actors the load needs (1 s mean)",
    )
    for name, result in comparison.results.items():
        m = result.metrics
        series = result.series
        size.step(
            series["time"],
            series["size"],
            where="post",
            color=_COLORS.get(name),
            label=f"{_LABELS.get(name, name)}: {m['scale_events']} scale events, "
            f"{m['direction_reversals']} reversals",
        )
        backlog.plot(
            series["time"],
            series["backlog"],
            color=_COLORS.get(name),
            linewidth=0.8,
            label=f"{_LABELS.get(name, name)}: {m['backlog_seconds']:.0f} backlog-s, "
            f"{m['actor_seconds']:.0f} actor-s",
        )
    size.set_ylabel("pool size (actors)")
    size.legend(loc="upper right")
    backlog.set_ylabel("items waiting")
    backlog.set_xlabel("simulated time (s)")
    backlog.legend(loc="upper right")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
