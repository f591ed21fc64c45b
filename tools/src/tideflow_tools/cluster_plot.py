"""The cluster benchmark's figure: demand, then pods per worker group for each autoscaler."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tideflow_tools.cluster_sim import SimConfig, SimResult

__all__ = ["plot_comparison"]

_LABELS = {"tideflow": "Tideflow MultiPoolPolicy", "ray_v2": "Ray 2.60 autoscaler v2 scheduler"}
_COLORS = {"tidal": "tab:green", "online": "tab:blue", "offline": "tab:purple"}


def plot_comparison(results: Mapping[str, SimResult], config: SimConfig, path: str | Path) -> Path:
    """Draw demand and the pods of each group over time into ``path`` (PNG); return it."""
    names = list(results)
    fig, axes = plt.subplots(
        1 + len(names),
        1,
        figsize=(12, 3.2 * (1 + len(names))),
        sharex=True,
        constrained_layout=True,
    )
    demand_ax, pod_axes = axes[0], axes[1:]
    for name in names:
        ticks = results[name].ticks
        t = [k["time"] for k in ticks]
        demand_ax.plot(t, [k["demand_cpu"] for k in ticks], label=f"{_LABELS[name]}: CPU asked")
        demand_ax.plot(
            t, [k["queued_cpu"] for k in ticks], linestyle=":", label=f"{_LABELS[name]}: queued"
        )
    demand_ax.set_ylabel("CPU")
    demand_ax.set_title(
        f"Demand trace (seed {config.seed}): ramp up, steady, tidal reclaim, ramp down"
    )
    demand_ax.legend(loc="upper right", fontsize=8)
    for ax, name in zip(pod_axes, names, strict=True):
        result = results[name]
        t = [k["time"] for k in result.ticks]
        for group in result.ticks[0]["pods"]:
            ax.step(
                t,
                [k["pods"][group] for k in result.ticks],
                where="post",
                color=_COLORS.get(group),
                label=group,
            )
        ax.set_ylabel("pods (not deleting)")
        ax.set_title(_LABELS.get(name, name))
        ax.legend(loc="upper right", fontsize=8)
    for ax in axes:
        reclaim = next(iter(results.values())).reclaim
        if reclaim:
            ax.axvspan(
                reclaim["time"],
                reclaim["time"] + config.tidal_outage_s,
                color="0.9",
                label="_tidal outage",
            )
            ax.axvline(reclaim["time"], color="tab:red", linewidth=0.8)
    axes[-1].set_xlabel("simulated time (s); red: reclaim notice, grey: tidal outage")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
