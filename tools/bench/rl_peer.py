"""Tideflow RL vs TRL's GRPOTrainer (issue 20, acceptance 1): the same task, side by side.

TRL's ``GRPOTrainer`` (synchronous: generate, score, train in turn) and Tideflow's trainer
(``buffer_size=1``, the synchronous loop, and ``buffer_size=2``, batch N trained while N+1
is generated) train the same tiny Qwen2 model — one set of starting weights, built and
warmed up by :mod:`tideflow.rl.toy` and saved once — on the same prompts (the toy digit
task, one prompt set written once and read by both), with the same rule reward
(``tideflow.rl.toy:reward``), group size, learning rate, max new tokens, temperature and
number of samples. Both get the same CPU budget in torch threads: TRL one process with
``--threads`` threads; Tideflow its rollout worker and trainer with half each. TRL runs in
this process (no accelerate launcher, CPU, no saving, no reporting, no vLLM); the losses are
configured alike and ``config_alignment`` in the JSON says how, and what still differs.
Repeats are interleaved (seed by seed, the order rotated) and medians or seed means quoted.

Goals: Tideflow ``buffer_size=1`` final reward ≥ TRL's − 0.05 (mean of the seeds), and
``buffer_size=2`` reaches TRL's final reward level ≥ 1.5× sooner in wall time (median
over seeds of TRL's time to that level ÷ Tideflow's). Wall times run from the first
training step's start (each side's start-up — Ray actors, TRL's ``Trainer`` — is
reported apart). Writes ``<out>/rl_peer.json`` and ``<out>/rl_peer.png``.

    uv run python tools/bench/rl_peer.py [--out bench-results] [--steps 80] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow_tools.bench import Goal, at_least, say, sized_options, write_result

METHODS = ("trl", "tideflow_buffer_1", "tideflow_buffer_2")
COLORS = {"trl": "#d1242f", "tideflow_buffer_1": "#1f6feb", "tideflow_buffer_2": "#1a7f37"}
LABELS = {
    "trl": "TRL GRPOTrainer",
    "tideflow_buffer_1": "Tideflow buffer_size=1",
    "tideflow_buffer_2": "Tideflow buffer_size=2",
}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What both trainers are given (one place, so the two sides cannot drift apart)."""

    steps: int
    prompts_per_step: int
    samples_per_prompt: int
    lr: float
    max_tokens: int
    temperature: float
    clip_ratio: float
    threads: int
    num_prompts: int
    loss: str = "bypass"
    """Tideflow's loss configuration: a key of :data:`LOSSES`."""

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt


@dataclass(kw_only=True)
class Run:
    """One training run: the reward of each step and when (seconds since training began)."""

    method: str
    seed: int
    times: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    samples: int = 0
    startup_s: float = 0.0
    load_1m: float = 0.0
    """The machine's 1-minute load average when the run ended (other work on the cores)."""
    phases: dict[str, float] = field(default_factory=dict)
    """Tideflow: median seconds per step of each phase (see :func:`tideflow_phases`)."""


LOSSES: dict[str, tuple[dict[str, Any], str]] = {
    "bypass": (
        {"off_policy": "bypass", "bypass_loss": "ppo_clip"},
        "PPO-clip on π_θ ÷ π_behaviour from the rollout's log-probs (verl's bypass mode): ≈ 1 "
        "at buffer_size=1 (generate vs. training forward round-off), the lag-1 ratio at "
        "buffer_size=2, where clipping can act",
    ),
    "trl": (
        {"off_policy": "decoupled", "rollout_is": None},
        "TRL's own loss: PPO-clip on π_θ ÷ π_prox, the trainer's policy before the update "
        "(exactly 1 at one update per step, as TRL's π_θ ÷ π_θ.detach()), no importance "
        "weights: stale samples are trained as if on-policy",
    ),
    "decoupled": (
        {"off_policy": "decoupled", "rollout_is": "token", "rollout_is_threshold": 2.0},
        "AReaL's decoupled PPO: PPO-clip on π_θ ÷ π_prox (exactly 1 at one update per step), "
        "each token weighted by π_prox ÷ π_behaviour truncated at 2",
    ),
}
"""Tideflow's loss configurations (``AlgorithmConfig`` fields, and what each does)."""


# -- the arithmetic (pure; tested) ---------------------------------------------------------


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """The mean of each value and the ``window − 1`` before it (fewer at the start)."""
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


def final_reward(rewards: Sequence[float], window: int) -> float:
    """The mean reward of the last ``window`` steps."""
    return statistics.fmean(rewards[-window:])


def time_to_level(
    times: Sequence[float], rewards: Sequence[float], level: float, window: int
) -> float | None:
    """Seconds until the ``window``-step trailing mean of the reward first reaches ``level``
    (``None``: never). The trailing mean at the last step is :func:`final_reward`, so a run
    always reaches its own final level."""
    for t, value in zip(times, trailing_mean(rewards, window), strict=True):
        if value >= level - 1e-9:
            return t
    return None


def speedup_to_level(
    peer: Run, ours: Run, level: float, window: int
) -> tuple[float, float | None, float | None]:
    """``(peer's time ÷ ours, peer's time, our time)`` to ``level``; 0 when we never reach it."""
    t_peer = time_to_level(peer.times, peer.rewards, level, window)
    t_ours = time_to_level(ours.times, ours.rewards, level, window)
    if t_peer is None or t_ours is None or t_ours <= 0:
        return 0.0, t_peer, t_ours
    return t_peer / t_ours, t_peer, t_ours


# -- the two sides -------------------------------------------------------------------------


def _tideflow_run(model: Path, prompts: Path, s: Settings, buffer_size: int, seed: int) -> Run:
    from tideflow.rl import (
        AlgorithmConfig,
        DataConfig,
        ModelConfig,
        RLConfig,
        RolloutConfig,
        TrainerConfig,
        train,
    )

    threads = max(1, s.threads // 2)
    config = RLConfig(
        model=ModelConfig(path=str(model)),
        data=DataConfig(path=str(prompts), prompts_per_step=s.prompts_per_step),
        rollout=RolloutConfig(
            samples_per_prompt=s.samples_per_prompt,
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            num_cpus=1,
            num_threads=threads,
        ),
        algorithm=AlgorithmConfig(
            advantage="grpo",
            norm_adv_by_std=True,
            loss_agg_mode="token-mean",
            clip_ratio=s.clip_ratio,
            kl_coef=0.0,
            **LOSSES[s.loss][0],
        ),
        trainer=TrainerConfig(lr=s.lr, grad_clip=1.0, num_cpus=1, num_threads=threads),
        buffer_size=buffer_size,
        total_steps=s.steps,
        seed=seed,
    )
    started = time.perf_counter()
    result = train(config)
    total = time.perf_counter() - started
    return Run(
        method=f"tideflow_buffer_{buffer_size}",
        seed=seed,
        times=[m.wall_s for m in result.steps],
        rewards=[m.reward_mean for m in result.steps],
        samples=sum(m.samples for m in result.steps),
        startup_s=max(0.0, total - result.wall_s),
        phases=tideflow_phases(result.steps),
    )


def tideflow_phases(steps: Sequence[Any]) -> dict[str, float]:
    """Median seconds per step (after the first 5, the warm-up; the first one only in a run
    of fewer than 10) of: generating a batch
    (slowest worker), training on one, publishing its weights, the trainer's wait between
    the end of one step and the start of the next, and one step end to end."""
    steady = list(steps[5:] if len(steps) >= 10 else steps[1:] or steps)

    def median(values: Sequence[float]) -> float:
        return round(statistics.median(values), 5) if values else 0.0

    return {
        "generate_s": median([m.generate_s for m in steady]),
        "train_s": median([m.train_s for m in steady]),
        "publish_s": median([m.publish_s for m in steady]),
        "trainer_gap_s": median(
            [b.train_interval[0] - a.train_interval[1] for a, b in itertools.pairwise(steady)]
        ),
        "step_s": median([b.wall_s - a.wall_s for a, b in itertools.pairwise(steady)]),
    }


def trl_config(s: Settings, seed: int, out: Path) -> Any:
    """TRL's ``GRPOConfig`` set like Tideflow's trainer (see ``config_alignment``)."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out),
        # one generation batch = one optimizer step on all of it, as in Tideflow
        per_device_train_batch_size=s.samples_per_step,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        num_generations=s.samples_per_prompt,
        max_completion_length=s.max_tokens,
        temperature=s.temperature,
        top_p=1.0,
        top_k=0,
        learning_rate=s.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.999,
        max_grad_norm=1.0,
        beta=0.0,
        epsilon=s.clip_ratio,
        loss_type="bnpo",
        scale_rewards="group",
        max_steps=s.steps,
        seed=seed,
        use_cpu=True,
        use_vllm=False,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _trl_reward(
    prompts: Sequence[str], completions: Sequence[str], answer: Sequence[str], **_: Any
) -> list[float | None]:
    from tideflow.rl.toy import reward

    return [reward({"answer": a}, str(c)) for c, a in zip(completions, answer, strict=True)]


def _trl_run(model: Path, items: Sequence[Mapping[str, Any]], s: Settings, seed: int) -> Run:
    import torch
    import transformers
    from datasets import Dataset  # type: ignore[import-untyped]
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(s.threads)
    run = Run(method="trl", seed=seed)

    class Clock(TrainerCallback):
        t0 = 0.0

        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            Clock.t0 = time.perf_counter()

        def on_log(self, *args: Any, logs: Mapping[str, Any] | None = None, **kw: Any) -> None:
            if logs and "reward" in logs:
                run.times.append(time.perf_counter() - Clock.t0)
                run.rewards.append(float(logs["reward"]))

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tideflow-bench-trl-") as out:
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32),
            reward_funcs=_trl_reward,
            args=trl_config(s, seed, Path(out)),
            train_dataset=Dataset.from_list([dict(item) for item in items]),
            processing_class=AutoTokenizer.from_pretrained(str(model)),
            callbacks=[Clock()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log line
        run.startup_s = time.perf_counter() - started
        trainer.train()
    run.samples = len(run.rewards) * s.samples_per_step
    return run


def config_alignment(s: Settings) -> dict[str, Any]:
    """How each loss and optimizer setting was matched, and what still differs."""
    return {
        "matched": {
            "kl": {"trl.beta": 0.0, "tideflow.algorithm.kl_coef": 0.0},
            "clip": {"trl.epsilon": s.clip_ratio, "tideflow.algorithm.clip_ratio": s.clip_ratio},
            "loss_aggregation": {
                "trl.loss_type": "bnpo",
                "tideflow.algorithm.loss_agg_mode": "token-mean",
                "both": "sum of per-token losses over the batch ÷ response tokens in it",
            },
            "advantages": {
                "trl.scale_rewards": "group",
                "tideflow.algorithm": "advantage=grpo, norm_adv_by_std=True",
                "both": "(reward − group mean) ÷ group std (unbiased)",
            },
            "updates_per_batch": {
                "trl": "num_iterations=1, steps_per_generation=1, gradient_accumulation_steps=1",
                "tideflow": "ppo_epochs=1, mini_batches=1",
                "both": "one AdamW step on the whole batch of samples_per_step samples",
            },
            "optimizer": {
                "lr": s.lr,
                "schedule": "constant (trl.lr_scheduler_type='constant', no warm-up)",
                "adamw_betas": [0.9, 0.999],
                "weight_decay": 0.0,
                "grad_clip": 1.0,
            },
            "sampling": {
                "temperature": s.temperature,
                "top_p": 1.0,
                "top_k": "none",
                "max_new_tokens": s.max_tokens,
                "group_size": s.samples_per_prompt,
                "logits ÷ temperature in the loss": "both",
            },
            "cpu_budget": {
                "trl": f"one process, torch.set_num_threads({s.threads})",
                "tideflow": (
                    f"rollout worker {max(1, s.threads // 2)} thread(s) + trainer "
                    f"{max(1, s.threads // 2)} thread(s)"
                ),
            },
        },
        "remaining_differences": [
            "Importance ratio anchor: TRL (num_iterations=1) uses π_θ ÷ π_θ.detach(), exactly "
            f"1; Tideflow (--loss {s.loss}): {LOSSES[s.loss][1]}",
            "Std epsilon in the advantages: TRL 1e-4, verl 1e-6.",
            "Prompt order: the same prompt set, each side's own seeded shuffle; sampling draws "
            "from each side's own random stream.",
            "Training forward pass: Tideflow's trainer (TrainerConfig.share_prompts, on by "
            "default) runs each distinct prompt once per batch and its group's responses "
            "against that prompt's keys and values, and never runs a response's last token "
            "(it predicts nothing scored): the same log-probs and gradients in fewer tokens. "
            "TRL runs every sample whole. Tideflow publishes weights as NumPy arrays "
            "(zero-copy in Ray's object store).",
            "Processes: TRL's 2 threads serve both phases in one process; Tideflow's rollout and "
            "trainer threads sit in separate Ray actors, plus light driver, buffer and reward "
            "actor processes (a rule reward: negligible CPU).",
        ],
    }


# -- the run -------------------------------------------------------------------------------


def _plot(runs: Sequence[Run], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=110)
    for method in METHODS:
        mine = [r for r in runs if r.method == method]
        for run in mine:
            axis.plot(
                run.times,
                run.rewards,
                color=COLORS[method],
                alpha=0.35 if len(mine) > 1 else 0.9,
                linewidth=1.0,
                label=LABELS[method] if len(mine) == 1 else None,
            )
        if len(mine) > 1:  # the seed mean at each step, at the seeds' mean time
            n = min(len(r.rewards) for r in mine)
            axis.plot(
                [statistics.fmean(r.times[k] for r in mine) for k in range(n)],
                [statistics.fmean(r.rewards[k] for r in mine) for k in range(n)],
                color=COLORS[method],
                linewidth=2.2,
                label=f"{LABELS[method]} (mean of {len(mine)} seeds)",
            )
    axis.set_xlabel("wall time since the first training step (s)")
    axis.set_ylabel("reward (batch mean)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarize(runs: Sequence[Run], window: int) -> dict[str, Any]:
    """Per method: final rewards per seed and their mean, samples/s, start-up; per seed: the
    times to TRL's final level and to a level every method reached."""
    by = {(r.method, r.seed): r for r in runs}
    seeds = sorted({r.seed for r in runs})
    methods: dict[str, Any] = {}
    for method in METHODS:
        mine = [by[(method, seed)] for seed in seeds]
        finals = [final_reward(r.rewards, window) for r in mine]
        rates = [r.samples / r.times[-1] for r in mine]
        methods[method] = {
            "final_reward_per_seed": [round(f, 4) for f in finals],
            "final_reward_mean": round(statistics.fmean(finals), 4),
            "first_reward_mean": round(
                statistics.fmean(statistics.fmean(r.rewards[:window]) for r in mine), 4
            ),
            "wall_s_per_seed": [round(r.times[-1], 3) for r in mine],
            "wall_s_median": round(statistics.median(r.times[-1] for r in mine), 3),
            "samples": mine[0].samples,
            "samples_per_s_per_seed": [round(x, 2) for x in rates],
            "samples_per_s_median": round(statistics.median(rates), 2),
            "startup_s_median": round(statistics.median(r.startup_s for r in mine), 3),
            "load_avg_1m_per_seed": [round(r.load_1m, 2) for r in mine],
        }
        if mine[0].phases:  # Tideflow: each phase's median over the seeds' medians
            methods[method]["phases_s_median"] = {
                name: round(statistics.median(r.phases[name] for r in mine), 5)
                for name in mine[0].phases
            }
    per_seed = []
    for seed in seeds:
        trl = by[("trl", seed)]
        level = final_reward(trl.rewards, window)
        common = min(final_reward(by[(m, seed)].rewards, window) for m in METHODS)
        row: dict[str, Any] = {
            "seed": seed,
            "trl_final_level": round(level, 4),
            "common_level": round(common, 4),
        }
        for method in METHODS:
            run = by[(method, seed)]
            row[f"{method}_s_to_trl_final"] = _round(
                time_to_level(run.times, run.rewards, level, window), 3
            )
            row[f"{method}_s_to_common"] = _round(
                time_to_level(run.times, run.rewards, common, window), 3
            )
        for method in METHODS[1:]:
            ratio = speedup_to_level(trl, by[(method, seed)], level, window)[0]
            row[f"{method}_speedup_to_trl_final"] = round(ratio, 4)
        per_seed.append(row)
    return {"methods": methods, "per_seed": per_seed}


def goals_of(summary: dict[str, Any]) -> dict[str, Goal]:
    methods, per_seed = summary["methods"], summary["per_seed"]
    gap = methods["tideflow_buffer_1"]["final_reward_mean"] - methods["trl"]["final_reward_mean"]
    speedup = statistics.median(r["tideflow_buffer_2_speedup_to_trl_final"] for r in per_seed)
    return {
        "buffer_1_final_reward_minus_trl": at_least(gap, -0.05),
        "buffer_2_speedup_to_trl_final_level": at_least(speedup, 1.5),
    }


FULL = {"steps": 80, "prompts": 32, "samples": 8, "seeds": 3}
"""The sizes of a full run, for each size option not given."""
QUICK = {"steps": 6, "prompts": 8, "samples": 4, "seeds": 1}
"""The sizes of a ``--quick`` run, for each size option not given."""


def _options(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The command line, each size not given taken from ``QUICK`` or ``FULL``."""
    return sized_options(parser, argv, quick=QUICK, full=FULL)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results", help="result folder")
    parser.add_argument("--steps", type=int, help="training steps per run (80; quick: 6)")
    parser.add_argument("--prompts", type=int, help="prompts per step (32; quick: 8)")
    parser.add_argument("--samples", type=int, help="samples per prompt, a group (8; quick: 4)")
    parser.add_argument("--seeds", type=int, help="repeats, seeds 0, 1, … (3; quick: 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per side")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate of both")
    parser.add_argument(
        "--loss",
        choices=tuple(LOSSES),
        default="bypass",
        help="Tideflow's importance ratio and correction: "
        + "; ".join(f"{name}: {text}" for name, (_, text) in LOSSES.items()),
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, few small steps (tests)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = _options(parser, argv)
    model_size: dict[str, int] = {
        "hidden_size": 128,
        "num_heads": 4,
        "intermediate_size": 256,
        "num_layers": 4,
    }
    warm_up_steps = 40
    if args.quick:
        model_size = {"hidden_size": 64, "num_heads": 2, "intermediate_size": 128, "num_layers": 2}
        warm_up_steps = 10
    if args.threads < 2:
        parser.error("--threads must be >= 2 (Tideflow's two roles get half each)")
    window = max(2, min(10, args.steps // 3))

    import ray

    from tideflow.rl.toy import DigitTask, build_digit_model, warm_up

    task = DigitTask()
    settings = Settings(
        steps=args.steps,
        prompts_per_step=args.prompts,
        samples_per_prompt=args.samples,
        lr=args.lr,
        max_tokens=task.max_tokens,
        temperature=1.0,
        clip_ratio=0.2,
        threads=args.threads,
        num_prompts=1024,
        loss=args.loss,
    )
    items = task.items(settings.num_prompts, seed=1234)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="tideflow-bench-rl-peer-") as tmp:
        model = build_digit_model(
            Path(tmp) / "model",
            hidden_size=model_size["hidden_size"],
            num_heads=model_size["num_heads"],
            intermediate_size=model_size["intermediate_size"],
            num_layers=model_size["num_layers"],
        )
        warm_up(model, steps=warm_up_steps, num_threads=args.threads)
        prompts = Path(tmp) / "prompts.jsonl"
        prompts.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
        # address="local": a Ray of our own, even where another one runs on this machine
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
        try:
            for index in range(args.seeds):
                order = METHODS[index % 3 :] + METHODS[: index % 3]  # interleaved, rotated
                for method in order:
                    if method == "trl":
                        run = _trl_run(model, items, settings, index)
                    else:
                        run = _tideflow_run(model, prompts, settings, int(method[-1]), index)
                    run.load_1m = os.getloadavg()[0]
                    runs.append(run)
                    say(
                        f"seed {index} {method}: {run.times[-1]:.1f} s for {len(run.rewards)} "
                        f"steps, final reward {final_reward(run.rewards, window):.3f}"
                    )
        finally:
            ray.shutdown()
    summary = summarize(runs, window)
    goals = goals_of(summary)
    plot = _plot(
        runs,
        Path(args.out) / "rl_peer.png",
        f"reward vs wall time: TRL vs Tideflow ({settings.samples_per_step} samples/step, "
        f"{args.threads} threads each)",
    )
    metrics = {
        "steps": args.steps,
        "prompts_per_step": args.prompts,
        "samples_per_prompt": args.samples,
        "samples_per_step": settings.samples_per_step,
        "seeds": args.seeds,
        "threads_per_side": args.threads,
        "lr": args.lr,
        "tideflow_loss": {"name": args.loss, **LOSSES[args.loss][0]},
        "max_new_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "model": model_size,
        "warm_up_steps": warm_up_steps,
        "reward_window_steps": window,
        **summary,
        "curves": {
            f"{r.method}/seed{r.seed}": [
                [round(t, 3), round(v, 4)] for t, v in zip(r.times, r.rewards, strict=True)
            ]
            for r in runs
        },
    }
    path = write_result(
        args.out,
        "rl_peer",
        metrics=metrics,
        goals=goals,
        config_alignment=config_alignment(settings),
        plot=str(plot),
        definitions={
            "wall time": "seconds from the first training step's start to a step's end "
            "(TRL: Trainer.train's on_train_begin; Tideflow: the roles being ready); "
            "start-up is reported apart (startup_s_median)",
            "final_reward": "mean batch reward of the last reward_window_steps steps",
            "time to a level": "first step end at which the trailing mean reward over "
            "reward_window_steps steps reaches the level",
            "trl_final_level": "TRL's final reward in the same seed",
            "common_level": "the lowest final reward of the three methods in that seed "
            "(every method reaches it)",
            "speedup_to_trl_final": "TRL's time to its final level ÷ Tideflow's time to it; "
            "0 when Tideflow never reaches it",
            "samples_per_s": "samples trained ÷ wall time of the last step",
            "phases_s_median": "Tideflow: per step, after 5 warm-up steps: generate_s (the "
            "batch's slowest worker), train_s, publish_s, trainer_gap_s (the trainer idle "
            "between two steps: the driver's round trip), step_s (step end to step end)",
            "load_avg_1m_per_seed": "the machine's 1-minute load average as each run ended: "
            "other work on the same cores slows both sides, TRL's 2-thread process the most",
        },
        note=_note(summary, goals),
    )
    say(_note(summary, goals))
    say(f"wrote {path} and {plot}")
    return 0


def _note(summary: dict[str, Any], goals: Mapping[str, Goal]) -> str:
    methods = summary["methods"]
    finals = ", ".join(f"{m} {methods[m]['final_reward_mean']:.3f}" for m in METHODS)
    rates = ", ".join(f"{m} {methods[m]['samples_per_s_median']:.0f}" for m in METHODS)
    missed = [name for name, goal in goals.items() if not goal.met]
    verdict = "all goals met" if not missed else f"missed: {', '.join(missed)}"
    return f"final rewards (seed mean): {finals}; samples/s (median): {rates}; {verdict}"


if __name__ == "__main__":
    raise SystemExit(main())
