"""Autoscaler benchmark: Ray Data's actor-pool rule (Ray 2.60) vs Tideflow's PoolScaler.

Replays one seeded bursty, jittery load trace through both policies on the same simulated
pool (same min/max size, same cold start) and writes ``<out>/autoscaler.json`` and
``<out>/autoscaler.png``. Goal: at least 5× fewer scale events than the Ray Data rule at no
more backlog-seconds.

    uv run python tools/bench/autoscaler.py [--out bench-results] [--seed N] [--duration S]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from tideflow.core.observability import configure_logging
from tideflow_tools.autoscale_plot import plot_comparison
from tideflow_tools.autoscale_sim import compare
from tideflow_tools.bench import at_least, at_most, write_result

DEFINITIONS = {
    "scale_events": "resizes actually made (a decision that changed the pool's size)",
    "direction_reversals": "consecutive scale events in opposite directions (up→down, down→up)",
    "backlog_seconds": "∫ (items arrived and not yet in service) dt: the sum of all items' "
    "waits, in the operator queue or behind another item in an actor",
    "actor_seconds": "∫ (actors in the pool, starting and draining included) dt",
    "efficiency": "work_seconds (sum of service times) ÷ actor_seconds",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results", help="result folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the load trace")
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    args = parser.parse_args(argv)
    configure_logging(level="warning")
    started = time.perf_counter()
    comparison = compare(args.seed, duration_s=args.duration)
    elapsed = time.perf_counter() - started
    ray, ours = (comparison.results[k].metrics for k in ("ray_data", "tideflow"))
    events_ratio = ray["scale_events"] / max(1, ours["scale_events"])
    backlog_ratio = (
        ours["backlog_seconds"] / ray["backlog_seconds"]
        if ray["backlog_seconds"]
        else float("inf")
        if ours["backlog_seconds"]
        else 1.0
    )
    goals = {
        "scale_events_ratio": at_least(events_ratio, 5),
        "backlog_seconds_ratio": at_most(backlog_ratio, 1.0),
    }
    trace = comparison.trace
    path = write_result(
        args.out,
        "autoscaler",
        metrics={
            "ray_data": ray,
            "tideflow": ours,
            "scale_events_ratio": round(events_ratio, 3),
            "backlog_seconds_ratio": round(backlog_ratio, 4),
            "actor_seconds_ratio": round(ours["actor_seconds"] / ray["actor_seconds"], 4),
            "simulation_wall_s": round(elapsed, 3),
        },
        goals=goals,
        definitions=DEFINITIONS,
        setup={
            "seed": args.seed,
            "trace": dataclasses.asdict(trace.config),
            "trace_items": trace.items,
            "pool": dataclasses.asdict(comparison.model),
            "tideflow_config": dataclasses.asdict(comparison.config),
            "ray_data_rule": "Ray 2.60 DefaultActorAutoscaler: util = in-flight ÷ (max_concurrency"
            " × size incl. pending); up at ≥ 1.75 by max(1, ceil(size·(util/1.75 − 1))); down by"
            " 1 at ≤ 0.5, none while actors are pending; down ignored 10 s after an up; "
            "evaluated every 50 ms tick",
        },
        events={name: result.events for name, result in comparison.results.items()},
    )
    png = plot_comparison(comparison, path.with_suffix(".png"))
    verdict = {k: "met" if g.met else "MISSED" for k, g in goals.items()}
    print(
        f"autoscaler: {ray['scale_events']} → {ours['scale_events']} scale events "
        f"({events_ratio:.1f}× fewer, goal ≥ 5: {verdict['scale_events_ratio']}); "
        f"backlog-seconds {ray['backlog_seconds']:.0f} → {ours['backlog_seconds']:.0f} "
        f"(ratio {backlog_ratio:.2f}, goal ≤ 1.0: {verdict['backlog_seconds_ratio']})"
    )
    print(f"wrote {path} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
