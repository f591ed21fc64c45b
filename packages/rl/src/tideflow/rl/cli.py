"""`tideflow-rl`: the trainer's command line (it owns the output: progress, summaries).

tideflow-rl train config.yaml [--set rollout.temperature=0.7] [--out DIR]
tideflow-rl demo --out DIR [--steps 150] [--buffer-size 2]

Exit codes: 0 done, 1 a role failed, 2 a configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tideflow.core.ray_start import apply_app_ray_settings
from tideflow.rl.errors import ConfigError, RoleFailedError


def _out(text: str, *, err: bool = False) -> None:
    """The command's own output (the CLI owns stdout and stderr; libraries only log)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


_EPILOG = (
    "Configuration reference: docs/how-to/rl.md, section Configuration (every field, with its "
    "default)."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tideflow-rl",
        description="Asynchronous RL training on Ray: rollout and training overlapped "
        "through a bounded buffer (buffer_size=1 is the synchronous loop).",
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="library log lines on stderr (default: console at a terminal, else JSON)",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="warning"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("train", help="train from a YAML config", epilog=_EPILOG)
    run.add_argument("config", help="YAML file with an RLConfig (model, data, rollout, …)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field by its dotted path, e.g. --set buffer_size=2 (VALUE is YAML)",
    )
    run.add_argument("--out", help="output folder (metrics.jsonl, reward.png); sets output.dir")
    run.add_argument("--no-progress", action="store_true", help="no live progress display")
    demo = commands.add_parser(
        "demo",
        help="train a tiny transformer from scratch on a digit task (CPU, a few minutes)",
        description="Builds a tiny Qwen2 model, warms it up on digit sequences, then trains "
        "it with async GRPO (buffer_size 2); prints metrics, writes the reward curve.",
    )
    demo.add_argument("--out", default="bench-results/demo-rl", help="output folder")
    demo.add_argument("--steps", type=int, default=150, help="GRPO steps (default 150)")
    demo.add_argument("--buffer-size", type=int, default=2, help="buffer size (default 2)")
    demo.add_argument("--no-progress", action="store_true", help="no live progress display")
    return parser


def _overrides(data: dict[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    import yaml

    for setting in settings:
        key, sep, raw = setting.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects FIELD=VALUE; got {setting!r}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def _load(path: str, settings: Sequence[str], out: str | None) -> Any:
    import yaml

    from tideflow.rl.config import config_from_dict

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path!r}: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top; got {document!r}")
    document = _overrides(document, settings)
    if out:
        document.setdefault("output", {})["dir"] = out
    return config_from_dict(document)


class _Display:
    """A rich progress bar at a terminal; one plain line per step elsewhere."""

    def __init__(self, total: int, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=False)
        self.live = enabled and self.console.is_terminal
        self.progress: Any = None
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]RL[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.progress.add_task("train", total=total, status="starting roles")
            self.progress.start()

    def step(self, metrics: Any, trainer: Any) -> None:
        line = (
            f"step {metrics.step:4d}  reward {metrics.reward_mean:.3f}  loss {metrics.loss:+.4f}"
            f"  lag {dict(metrics.staleness)}  sync {metrics.weight_sync_s * 1000:.1f} ms"
            f"  idle trainer {metrics.trainer_idle_ratio:.0%} rollout "
            f"{metrics.rollout_idle_ratio:.0%}"
        )
        if self.live:
            status = f"reward {metrics.reward_mean:.3f} lag≤{metrics.max_lag}"
            self.progress.update(self.task, completed=metrics.step + 1, status=status)
            if metrics.step % 10 == 0:
                self.progress.console.print(line)
        else:
            _out(line)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _summary(result: Any) -> dict[str, Any]:
    steps = result.steps
    k = max(1, min(10, len(steps) // 4))
    return {
        "steps": len(steps),
        "resumed_from": result.resumed_from,
        "wall_s": round(result.wall_s, 2),
        "reward_first": round(sum(s.reward_mean for s in steps[:k]) / k, 4) if steps else None,
        "reward_last": round(sum(s.reward_mean for s in steps[-k:]) / k, 4) if steps else None,
        "trainer_idle_ratio": round(steps[-1].trainer_idle_ratio, 3) if steps else None,
        "rollout_idle_ratio": round(steps[-1].rollout_idle_ratio, 3) if steps else None,
        "mean_weight_sync_s": (
            round(sum(s.weight_sync_s for s in steps) / len(steps), 5) if steps else None
        ),
        "max_lag": max((s.max_lag for s in steps), default=0),
        "metrics": str(result.metrics_path) if result.metrics_path else None,
        "curve": str(result.curve_path) if result.curve_path else None,
    }


def _ray_cpus(config: Any) -> int:
    """Logical CPUs for every role at once, even on a 2-core machine (what the trainer asks
    for when it starts Ray itself)."""
    needed = (
        config.trainer.num_cpus
        + config.rollout.num_cpus * config.rollout.largest_pool
        + config.reward.num_cpus * config.reward.num_workers
    )
    return max(os.cpu_count() or 1, math.ceil(needed))


def _run(config: Any, progress: bool) -> dict[str, Any]:
    from tideflow.core.ray_start import start_ray
    from tideflow.rl.trainer import RLTrainer

    # Ctrl-C while Ray starts leaves no Ray process behind (then exit code 130).
    start_ray(num_cpus=_ray_cpus(config), include_dashboard=False, log_to_driver=False)
    display = _Display(config.total_steps, progress)
    try:
        result = RLTrainer(config, on_step=display.step).run()
    finally:
        display.close()
    return _summary(result)


def _demo(args: argparse.Namespace) -> dict[str, Any]:
    from tideflow.rl.config import (
        DataConfig,
        ModelConfig,
        OutputConfig,
        RLConfig,
        RolloutConfig,
        TrainerConfig,
    )
    from tideflow.rl.toy import DigitTask, build_digit_model, warm_up

    out = Path(args.out)
    task = DigitTask()
    model = out / "model"
    _out(f"building a tiny Qwen2 model in {model} and warming it up (supervised) …")
    build_digit_model(model, task=task)
    started = time.perf_counter()
    warm_up(model, task=task, steps=30, num_threads=1)
    _out(f"warm-up done in {time.perf_counter() - started:.1f} s; GRPO starts")
    config = RLConfig(
        model=ModelConfig(path=str(model)),
        data=DataConfig(num_prompts=1024, prompts_per_step=16),
        rollout=RolloutConfig(samples_per_prompt=8, max_tokens=task.max_tokens),
        trainer=TrainerConfig(lr=1e-3),
        output=OutputConfig(dir=str(out)),
        buffer_size=args.buffer_size,
        total_steps=args.steps,
    )
    summary = _run(config, not args.no_progress)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    apply_app_ray_settings()  # before anything imports Ray
    args = _parser().parse_args(argv)
    from tideflow.core.observability import configure_logging

    configure_logging(format=args.log_format, level=args.log_level)
    from tideflow.rl._preflight import check_run

    try:
        if args.command == "train":
            config = _load(args.config, args.set, args.out)
            check_run(config)  # before Ray starts
            summary = _run(config, not args.no_progress)
        else:
            summary = _demo(args)
    except ConfigError as error:
        _out(f"tideflow-rl: configuration error: {error}", err=True)
        return 2
    except RoleFailedError as error:
        _out(f"tideflow-rl: {error}", err=True)
        return 1
    except KeyboardInterrupt:
        _out("tideflow-rl: interrupted", err=True)
        return 130
    _out(json.dumps(summary, indent=2))
    return 0
