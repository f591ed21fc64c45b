"""Stale-sample ablation (issue 20, acceptance 4): naive PPO vs AReaL's decoupled objective.

At staleness 1, 2 and 4 (``buffer_size = s + 1``, ``max_staleness = s``: rollout runs up to
``s`` batches ahead of the trainer, so a batch trained at version ``v`` was generated with
the weights of version ``v − s``), the toy digit task is trained with

- ``naive``: PPO-clip anchored on the behaviour log-probs, no correction
  (``off_policy="bypass"``, ``bypass_loss="ppo_clip"``, ``rollout_is=None``);
- ``decoupled``: AReaL's decoupled PPO — PPO-clip on π_θ / π_prox (the trainer's policy
  before the step), each token weighted by π_prox / π_behaviour truncated at 2
  (``off_policy="decoupled"``, ``rollout_is="token"``),

each with 3 seeds, the runs interleaved (seed → level → objective). Each step makes two
optimizer updates (``mini_batches=2``), so the proximal anchor differs from π_θ on the
second. The JSON holds, per level and objective, the final reward (mean of the last
steps) as mean ± std over seeds, every curve, and the staleness histogram the trainer
recorded (samples per lag), which shows the lag was real. ``rl_staleness.png`` has one
panel per level.

Writes ``<out>/rl_staleness.json`` (DESIGN §5).

    uv run python tools/bench/rl_staleness.py [--out bench-results] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow.core.ray_start import start_ray
from tideflow.rl import (
    AlgorithmConfig,
    DataConfig,
    ModelConfig,
    RLConfig,
    RLResult,
    RolloutConfig,
    TrainerConfig,
    train,
)
from tideflow.rl.toy import DigitTask, build_digit_model, warm_up
from tideflow_tools.bench import at_least, say, sized_options, write_result

OBJECTIVES: dict[str, AlgorithmConfig] = {
    "naive": AlgorithmConfig(off_policy="bypass", bypass_loss="ppo_clip", rollout_is=None),
    "decoupled": AlgorithmConfig(
        off_policy="decoupled", policy_loss="vanilla", rollout_is="token", rollout_is_threshold=2.0
    ),
}


def _config(
    model: Path, *, staleness: int, objective: str, seed: int, args: argparse.Namespace
) -> RLConfig:
    return RLConfig(
        model=ModelConfig(path=str(model)),
        data=DataConfig(num_prompts=4096, prompts_per_step=args.prompts),
        rollout=RolloutConfig(
            samples_per_prompt=args.samples,
            max_tokens=DigitTask().max_tokens,
            num_cpus=1,
            num_threads=1,
        ),
        algorithm=OBJECTIVES[objective],
        trainer=TrainerConfig(lr=args.lr, mini_batches=2, num_cpus=1, num_threads=1),
        buffer_size=staleness + 1,
        max_staleness=staleness,
        total_steps=args.steps,
        seed=seed,
    )


def _run_summary(result: RLResult, last: int) -> dict[str, Any]:
    lags: Counter[int] = Counter()
    for step in result.steps:
        lags.update(step.staleness)
    steps = result.steps
    return {
        "curve": [round(r, 4) for r in result.rewards],
        "clipfrac": statistics.fmean(s.extra.get("actor/pg_clipfrac", 0.0) for s in steps),
        "behaviour_kl": statistics.fmean(s.behaviour_kl for s in steps),
        "final_reward": statistics.fmean(result.rewards[-last:]),
        "staleness_histogram": {str(k): v for k, v in sorted(lags.items())},
        "wall_s": round(result.wall_s, 2),
    }


def _std(values: list[float]) -> float:
    """The sample standard deviation of ``values`` over seeds (0.0 with one seed)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _plot(levels: dict[str, Any], objectives: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.4), sharey=True)
    axes = axes if len(levels) > 1 else [axes]
    for axis, (level, data) in zip(axes, levels.items(), strict=True):
        for objective in objectives:
            curves = data[objective]["curves"]
            mean = [statistics.fmean(c[i] for c in curves) for i in range(len(curves[0]))]
            spread = [_std([c[i] for c in curves]) for i in range(len(curves[0]))]
            steps = list(range(len(mean)))
            (line,) = axis.plot(steps, mean, label=objective)
            axis.fill_between(
                steps,
                [m - s for m, s in zip(mean, spread, strict=True)],
                [m + s for m, s in zip(mean, spread, strict=True)],
                color=line.get_color(),
                alpha=0.2,
            )
        axis.set_title(f"staleness {level}")
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("reward (mean ± std over seeds)")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _by_level(
    runs: dict[tuple[int, str], list[dict[str, Any]]], levels: list[int], objectives: list[str]
) -> tuple[dict[str, Any], dict[str, float]]:
    """Per level: each objective's finals (mean ± std over seeds), curves and lags; and the
    share of samples trained at exactly the level's lag."""
    by_level: dict[str, Any] = {}
    lag_share: dict[str, float] = {}
    for level in levels:
        entry: dict[str, Any] = {}
        lags: Counter[int] = Counter()
        for objective in objectives:
            arm = runs[(level, objective)]
            finals = [r["final_reward"] for r in arm]
            histogram: Counter[int] = Counter()
            for r in arm:
                histogram.update({int(k): v for k, v in r["staleness_histogram"].items()})
            lags.update(histogram)
            entry[objective] = {
                "final_reward_mean": round(statistics.fmean(finals), 4),
                "final_reward_std": round(_std(finals), 4),
                "final_rewards": [round(f, 4) for f in finals],
                "curves": [r["curve"] for r in arm],
                "clipfrac_mean": round(statistics.fmean(r["clipfrac"] for r in arm), 4),
                "behaviour_kl_mean": round(statistics.fmean(r["behaviour_kl"] for r in arm), 5),
                "staleness_histogram": {str(k): v for k, v in sorted(histogram.items())},
                "wall_s": [r["wall_s"] for r in arm],
            }
        entry["decoupled_minus_naive"] = round(
            entry["decoupled"]["final_reward_mean"] - entry["naive"]["final_reward_mean"], 4
        )
        total = sum(lags.values())
        lag_share[str(level)] = lags[level] / total if total else 0.0
        entry["share_of_samples_at_this_lag"] = round(lag_share[str(level)], 4)
        entry["max_lag_seen"] = max(lags) if lags else 0
        by_level[str(level)] = entry
    return by_level, lag_share


def _verdict(helped: list[str], hurt: list[str]) -> str:
    """Whether the decoupled objective's extra movement paid, as the figures say."""
    if helped and hurt:
        return (
            f"that extra movement paid at staleness {', '.join(helped)} and did not pay at "
            f"{', '.join(hurt)}."
        )
    if helped:
        return f"that extra movement paid (at staleness {', '.join(helped)})."
    if hurt:
        return f"that extra movement did not pay (it hurt at staleness {', '.join(hurt)})."
    return "that extra movement changed the final reward by no more than 0.02."


def _note(by_level: dict[str, Any], lag_share: dict[str, float], *, seeds: int, last: int) -> str:
    """What the figures show, in words (written whatever they show)."""
    gains = {level: by_level[level]["decoupled_minus_naive"] for level in by_level}
    helped = [level for level, gain in gains.items() if gain > 0.02]
    hurt = [level for level, gain in gains.items() if gain < -0.02]
    clips = {
        level: (entry["naive"].get("clipfrac_mean"), entry["decoupled"].get("clipfrac_mean"))
        for level, entry in by_level.items()
    }
    clip_text = ""
    if all(a is not None and b is not None for a, b in clips.values()):
        clip_text = (
            " Share of tokens whose ratio was clipped, naive vs decoupled: "
            + ", ".join(f"s={k}: {a:.1%} vs {b:.1%}" for k, (a, b) in clips.items())
            + ". Naive PPO clips π_θ/π_behaviour, so the staler the samples the more tokens"
            " lose their gradient: an implicit, growing brake on stale data. The decoupled"
            " objective clips against π_prox and keeps stale tokens (weighted by"
            " π_prox/π_behaviour ≤ 2), so it moves further per step on them; on this toy"
            " task and learning rate " + _verdict(helped, hurt)
        )
    return (
        f"Final reward (mean of the last {last} steps) per staleness level, decoupled − naive: "
        + ", ".join(f"s={k}: {v:+.3f}" for k, v in gains.items())
        + ". "
        + (
            f"The correction helped (> +0.02) at staleness {', '.join(helped)}; "
            if helped
            else "The correction did not help by more than 0.02 at any level; "
        )
        + (f"it hurt (< −0.02) at {', '.join(hurt)}. " if hurt else "it hurt at none. ")
        + f"With {seeds} seeds, differences smaller than the std over seeds are noise. "
        + "Staleness was real: "
        + ", ".join(f"{100 * v:.0f}% of samples at lag {k}" for k, v in lag_share.items())
        + " (the rest are the first batches, generated before the trainer had made that "
        "many versions)." + clip_text
    )


FULL = {"steps": 60, "prompts": 16, "samples": 8, "seeds": 3, "levels": "1,2,4"}
"""The sizes of a full run, for each size option not given."""
QUICK = {"steps": 5, "prompts": 4, "samples": 4, "seeds": 1, "levels": "1,2,4"}
"""The sizes of a ``--quick`` run, for each size option not given."""


def _options(argv: list[str] | None) -> argparse.Namespace:
    """The command line, each size not given taken from ``QUICK`` or ``FULL``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results", help="result folder")
    parser.add_argument("--steps", type=int, help="training steps per run (60; quick: 5)")
    parser.add_argument("--prompts", type=int, help="prompts per step (16; quick: 4)")
    parser.add_argument("--samples", type=int, help="samples per prompt (8; quick: 4)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    parser.add_argument("--seeds", type=int, help="seeds per level and objective (3; quick: 1)")
    parser.add_argument("--levels", help="staleness levels, comma-separated (1,2,4; quick too)")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    return sized_options(parser, argv, quick=QUICK, full=FULL)


def main(argv: list[str] | None = None) -> int:
    args = _options(argv)
    levels = [int(x) for x in args.levels.split(",")]
    objectives = list(OBJECTIVES)
    last = max(1, min(6, args.steps // 4))
    import ray

    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tideflow-bench-rl-staleness-") as tmp:
        model = build_digit_model(Path(tmp) / "model")
        warm_up(model, steps=40, num_threads=1)
        started_ray = start_ray(num_cpus=4, include_dashboard=False, log_to_driver=False)
        try:
            for seed in range(args.seeds):  # interleaved: every arm sees the same drift
                for level in levels:
                    for objective in objectives:
                        config = _config(
                            model, staleness=level, objective=objective, seed=seed, args=args
                        )
                        summary = _run_summary(train(config), last)
                        runs.setdefault((level, objective), []).append(summary)
                        say(
                            f"staleness {level} {objective:9s} seed {seed}: final reward "
                            f"{summary['final_reward']:.3f}, lags {summary['staleness_histogram']}"
                        )
        finally:
            if started_ray:  # a test session's Ray stays up
                ray.shutdown()
    by_level, lag_share = _by_level(runs, levels, objectives)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot = _plot(by_level, objectives, out / "rl_staleness.png")
    gains = {level: by_level[level]["decoupled_minus_naive"] for level in by_level}
    note = _note(by_level, lag_share, seeds=args.seeds, last=last)
    quick_note = " (--quick: a smoke test, too short to show anything)" if args.quick else ""
    path = write_result(
        out,
        "rl_staleness",
        metrics={
            "levels": by_level,
            "steps": args.steps,
            "samples_per_step": args.prompts * args.samples,
            "seeds": args.seeds,
            "lr": args.lr,
            "final_reward_last_steps": last,
            "total_s": round(time.perf_counter() - started, 1),
        },
        goals={
            # Staleness must be real: most samples at each level lag by exactly that level.
            **{f"share_at_lag_{level}": at_least(share, 0.5) for level, share in lag_share.items()},
            f"decoupled_minus_naive_at_{levels[-1]}": at_least(gains[str(levels[-1])], 0.0),
        },
        definitions={
            "naive": "off_policy=bypass, bypass_loss=ppo_clip, rollout_is=None",
            "decoupled": "off_policy=decoupled (AReaL): clip on π_θ/π_prox, weights "
            "min(π_prox/π_behaviour, 2) per token",
            "staleness s": "buffer_size = s + 1, max_staleness = s",
            "final_reward": f"mean reward of the last {last} training steps of a run",
            "staleness_histogram": "samples trained per lag (trainer version − sample version)",
            "clipfrac_mean": "share of response tokens whose PPO ratio was clipped (verl's "
            "actor/pg_clipfrac; naive: π_θ/π_behaviour, decoupled: π_θ/π_prox), mean of steps",
            "behaviour_kl_mean": "mean log π_behaviour − log π_θ over response tokens",
            "setup": "tiny Qwen2 digit model (hidden 64, 2 layers) after 40 warm-up steps; "
            "2 optimizer updates per step (mini_batches=2)",
        },
        note=note + quick_note,
        plot=str(plot),
    )
    say(note)
    say(f"wrote {path} and {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
