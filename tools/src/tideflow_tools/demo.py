"""``tideflow-demo``: both scaling policies on one bursty load trace, side by side.

Simulates an elastic actor pool (3 s cold start) under Ray Data's actor-pool rule (Ray 2.60)
and under Tideflow's :class:`~tideflow.core.autoscaler.PoolScaler`, shows progress on a
terminal (plain lines otherwise) and prints a summary table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tideflow.core.observability import configure_logging
from tideflow_tools.autoscale_sim import Comparison, compare

__all__ = ["main"]

_NAMES = {"ray_data": "Ray Data rule (2.60)", "tideflow": "Tideflow PoolScaler"}


def _run(seed: int, duration: float, console: Console) -> Comparison:
    if console.is_terminal:
        with Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            tasks: dict[str, TaskID] = {
                name: bar.add_task(label, total=1.0) for name, label in _NAMES.items()
            }

            def update(policy: str, fraction: float) -> None:
                bar.update(tasks[policy], completed=fraction)

            return compare(seed, duration_s=duration, progress=update)
    last: dict[str, int] = {}

    def lines(policy: str, fraction: float) -> None:
        quarter = int(fraction * 4)
        if last.get(policy) != quarter:
            last[policy] = quarter
            print(f"{_NAMES[policy]}: {quarter * 25}% simulated", flush=True)

    report: Callable[[str, float], None] = lines
    return compare(seed, duration_s=duration, progress=report)


def _table(comparison: Comparison) -> Table:
    table = Table(
        title=f"{comparison.trace.items} items over "
        f"{comparison.trace.config.duration_s:g} s (seed {comparison.trace.seed})"
    )
    table.add_column("policy")
    for column in ("scale events", "reversals", "backlog-s", "actor-s", "mean wait s"):
        table.add_column(column, justify="right")
    for name, result in comparison.results.items():
        m = result.metrics
        table.add_row(
            _NAMES.get(name, name),
            str(m["scale_events"]),
            str(m["direction_reversals"]),
            f"{m['backlog_seconds']:.0f}",
            f"{m['actor_seconds']:.0f}",
            f"{m['mean_wait_s']:.2f}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tideflow-demo",
        description="Replay a seeded bursty, jittery load through Ray Data's actor-pool "
        "autoscaling rule and Tideflow's PoolScaler, and compare them.",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the load trace (0)")
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds (600)")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error(f"--duration must be > 0; got {args.duration}")
    configure_logging(level="warning")
    console = Console()
    comparison = _run(args.seed, args.duration, console)
    console.print(_table(comparison))
    ray, ours = (comparison.results[k].metrics for k in ("ray_data", "tideflow"))
    console.print(
        f"{ray['scale_events'] / max(1, ours['scale_events']):.1f}× fewer scale "
        f"events; backlog-seconds ratio "
        f"{ours['backlog_seconds'] / max(ray['backlog_seconds'], 1e-9):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
