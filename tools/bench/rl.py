"""Async RL benchmark (issue 6, acceptance 6): buffer_size 1 (synchronous) vs 2 (overlap).

The same number of samples is trained twice in one run — ``buffer_size=1`` then
``buffer_size=2`` — on the toy digit task with a tiny Qwen2 model warmed up from scratch.
The rollout worker and the trainer are each limited to one core (``num_cpus=1`` actors,
one torch thread). Phase times per step are measured in the synchronous run:
G (generate + score), T (train + publish weights), S (load weights into the rollout), and
the overlap bound is (G + T + S) / max(G + S, T). Goal: speedup ≥ 0.9 × bound, with the
final rewards of both runs in the same band (|Δ| ≤ 0.1).

Writes ``<out>/rl.json`` (DESIGN §5).

    uv run python tools/bench/rl.py [--out bench-results] [--steps 40] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow.rl import (
    DataConfig,
    ModelConfig,
    RLConfig,
    RLResult,
    RolloutConfig,
    TrainerConfig,
    train,
)
from tideflow.rl.toy import DigitTask, build_digit_model, warm_up
from tideflow_tools.bench import at_least, at_most, say, write_result


def _config(model: Path, buffer_size: int, steps: int, prompts: int, samples: int) -> RLConfig:
    return RLConfig(
        model=ModelConfig(path=str(model)),
        data=DataConfig(num_prompts=4096, prompts_per_step=prompts),
        rollout=RolloutConfig(
            samples_per_prompt=samples,
            max_tokens=DigitTask().max_tokens,
            num_cpus=1,
            num_threads=1,
        ),
        trainer=TrainerConfig(lr=1e-3, num_cpus=1, num_threads=1),
        buffer_size=buffer_size,
        total_steps=steps,
        seed=1,
    )


def _phases(result: RLResult, skip: int) -> dict[str, float]:
    steps = result.steps[skip:]  # the first steps warm caches and allocators
    generate = statistics.fmean(s.generate_s + s.reward_s for s in steps)
    train_s = statistics.fmean(s.train_s + s.publish_s for s in steps)
    load = statistics.fmean(max(0.0, s.weight_sync_s - s.publish_s) for s in steps)
    return {"G_s": generate, "T_s": train_s, "S_s": load}


def _summary(result: RLResult, skip: int) -> dict[str, Any]:
    steps = result.steps
    per_step = (steps[-1].train_interval[1] - steps[skip].train_interval[0]) / (
        len(steps) - skip - 1
    )
    return {
        "wall_s": round(result.wall_s, 3),
        "steady_s_per_step": round(per_step, 4),
        "final_reward": round(statistics.fmean(s.reward_mean for s in steps[-5:]), 4),
        "first_reward": round(statistics.fmean(s.reward_mean for s in steps[:5]), 4),
        "trainer_idle_ratio": round(steps[-1].trainer_idle_ratio, 3),
        "rollout_idle_ratio": round(steps[-1].rollout_idle_ratio, 3),
        "mean_weight_sync_s": round(statistics.fmean(s.weight_sync_s for s in steps), 5),
        "max_lag": max(s.max_lag for s in steps),
        "samples": sum(s.samples for s in steps),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results", help="result folder")
    parser.add_argument("--steps", type=int, default=40, help="training steps per run")
    parser.add_argument("--prompts", type=int, default=32, help="prompts per step")
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt")
    parser.add_argument("--quick", action="store_true", help="small sizes (dev, tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.prompts = 12, 16
    import ray

    skip = 2
    with tempfile.TemporaryDirectory(prefix="tideflow-bench-rl-") as tmp:
        model = build_digit_model(
            Path(tmp) / "model", hidden_size=128, num_heads=4, intermediate_size=256, num_layers=4
        )
        warm_up(model, steps=40, num_threads=1)
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
        try:
            runs = {}
            for size in (1, 2):
                config = _config(model, size, args.steps, args.prompts, args.samples)
                runs[size] = train(config)
                say(f"buffer_size={size}: {runs[size].wall_s:.2f} s for {args.steps} steps")
        finally:
            ray.shutdown()
    sync, overlap = _summary(runs[1], skip), _summary(runs[2], skip)
    phases = _phases(runs[1], skip)
    g, t, s = phases["G_s"], phases["T_s"], phases["S_s"]
    bound = (g + t + s) / max(g + s, t)
    speedup = sync["wall_s"] / overlap["wall_s"]
    steady = sync["steady_s_per_step"] / overlap["steady_s_per_step"]
    reward_gap = abs(sync["final_reward"] - overlap["final_reward"])
    metrics = {
        "steps": args.steps,
        "samples_per_step": args.prompts * args.samples,
        "buffer_size_1": sync,
        "buffer_size_2": overlap,
        "phases_per_step": {k: round(v, 5) for k, v in phases.items()},
        "bound": round(bound, 4),
        "speedup": round(speedup, 4),
        "speedup_over_bound": round(speedup / bound, 4),
        "steady_speedup": round(steady, 4),
        "final_reward_gap": round(reward_gap, 4),
    }
    path = write_result(
        args.out,
        "rl",
        metrics=metrics,
        goals={
            "speedup_over_bound": at_least(speedup / bound, 0.9),
            "final_reward_gap": at_most(reward_gap, 0.1),
        },
        definitions={
            "wall_s": "roles ready → last step's end (startup not counted)",
            "G_s": "generate + score one batch (buffer_size=1 run, mean)",
            "T_s": "train one step + publish its weights (mean)",
            "S_s": "load published weights into the rollout worker (mean)",
            "bound": "(G + T + S) / max(G + S, T)",
            "steady_speedup": "per-step time after warm-up steps, sync ÷ overlap",
        },
    )
    say(
        f"speedup {speedup:.2f}× (bound {bound:.2f}×, {speedup / bound:.0%} of it); "
        f"final rewards {sync['final_reward']:.3f} vs {overlap['final_reward']:.3f}"
    )
    say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
