"""``tideflow-demo``: Tideflow end to end on embedded defaults.

0. The video search app (``apps/video_search``) on generated videos: ingest (frames,
   near-duplicate removal, OCR, subtitles, speech, embeddings → Lance), then questions asked
   as paraphrases, each answered with a moment of a video (see
   :mod:`tideflow_video_search.demo`).
1. The video OCR app (``apps/ocr``) on generated videos: shards OCR'd in parallel, gathered
   per video, filtered in two layers, written to Iceberg and JSON lines as each video
   completes; a corrupt file goes to the failure callback (see :mod:`tideflow_ocr.demo`).
2. Streaming: a checkpointed job over generated video shards — decode, an autoscaled
   "embedding" pool, a keyed stage that gathers each video's frames, a two-phase Parquet
   sink — then the same job id again, which resumes and writes nothing new
   (see :mod:`tideflow_tools.streaming_demo`).
3. LLM: a Processor (preprocess → chat template → tokenize → transformers engine →
   detokenize → postprocess) on generated captions with a tiny random Qwen2 model built
   on the spot; one over-long caption lands in the dead letters
   (see :mod:`tideflow_tools.llm_demo`).
4. Simulation: an elastic actor pool (3 s cold start) on one bursty load trace, under Ray
   Data's actor-pool rule (Ray 2.60) and under Tideflow's
   :class:`~tideflow.core.autoscaler.PoolScaler`, side by side.
5. Live: a bursty stream of batches through a real :class:`~tideflow.core.ActorPool` on a
   local Ray, scaled by a ``PoolScaler``, checkpointed every 2 s through the epoch
   coordinator, with one actor killed half way (see :mod:`tideflow_tools.live_demo`).

Progress shows on a terminal (plain lines otherwise); each part ends with a summary table.
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
    parser.add_argument(
        "--only",
        choices=("search", "ocr", "streaming", "llm", "sim", "live"),
        help="run only the video search app, the OCR app, the streaming job, the LLM stage, "
        "the autoscaling "
        "simulation or the live pool job",
    )
    parser.add_argument(
        "--workdir", default=".tideflow/demo", help="where the streaming job keeps its files"
    )
    parser.add_argument(
        "--live-seconds", type=float, default=24.0, help="seconds batches arrive in the live job"
    )
    parser.add_argument(
        "--checkpoint-dir", help="where the live job writes checkpoints (a new temp dir)"
    )
    parser.add_argument(
        "--log-format", choices=("auto", "console", "json"), default="auto", help="log format"
    )
    parser.add_argument("--log-level", default="error", help="log level (error)")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error(f"--duration must be > 0; got {args.duration}")
    if args.live_seconds <= 0:
        parser.error(f"--live-seconds must be > 0; got {args.live_seconds}")
    configure_logging(format=args.log_format, level=args.log_level)
    console = Console()
    ok = True
    if args.only in (None, "search"):
        ok = _search(args, console) and ok
    if args.only in (None, "ocr"):
        ok = _ocr(args, console) and ok
    if args.only in (None, "streaming"):
        import shutil
        from pathlib import Path

        from tideflow_tools.live_view import local_ray
        from tideflow_tools.streaming_demo import run_streaming_part

        console.rule("3/6 a streaming job: checkpointed, exactly once")
        workdir = Path(args.workdir)
        shutil.rmtree(workdir, ignore_errors=True)  # a fresh job every time the demo runs
        with local_ray(console):
            ok = run_streaming_part(console, workdir=workdir) and ok
    if args.only in (None, "llm"):
        from tideflow_tools.live_view import local_ray
        from tideflow_tools.llm_demo import run_llm_demo

        console.rule("4/6 an LLM stage: a Processor of six stages on generated text")
        with local_ray(console):
            ok = run_llm_demo(console, rows=48) and ok
    if args.only in (None, "sim"):
        _simulation(args, console)
    if args.only in (None, "live"):
        from tideflow_tools.live_view import run_live_part

        ok = (
            run_live_part(
                console,
                seconds=args.live_seconds,
                seed=args.seed,
                checkpoint_dir=args.checkpoint_dir,
            )
            and ok
        )
    return 0 if ok else 1


def _search(args: argparse.Namespace, console: Console) -> bool:
    import shutil
    from pathlib import Path

    import ray

    from tideflow_video_search.demo import DemoCheckError, run_demo
    from tideflow_video_search.ingest import local_cpus

    console.rule("1/6 the video search app: videos → OCR │ subtitles │ speech → Lance → questions")
    workdir = Path(args.workdir) / "search"
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run every time the demo runs
    console.print("starting a local Ray …")
    ray.init(num_cpus=local_cpus(), include_dashboard=False, log_to_driver=False)
    try:
        run_demo(workdir, console=console)
    except DemoCheckError as error:
        console.print(f"[red]the video search app answered wrong:[/red] {error}")
        return False
    finally:
        ray.shutdown()
    return True


def _ocr(args: argparse.Namespace, console: Console) -> bool:
    import shutil
    from pathlib import Path

    from tideflow_ocr.demo import DemoCheckError, run_demo
    from tideflow_tools.live_view import local_ray

    console.rule("2/6 the video OCR app: shards → OCR pool → per-video gather → two filters")
    workdir = Path(args.workdir) / "ocr"
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run every time the demo runs
    with local_ray(console):
        try:
            run_demo(workdir, console=console)
        except DemoCheckError as error:
            console.print(f"[red]the OCR app's results are wrong:[/red] {error}")
            return False
    return True


def _simulation(args: argparse.Namespace, console: Console) -> None:
    console.rule("5/6 autoscaling policies, simulated")
    comparison = _run(args.seed, args.duration, console)
    console.print(_table(comparison))
    ray, ours = (comparison.results[k].metrics for k in ("ray_data", "tideflow"))
    console.print(
        f"{ray['scale_events'] / max(1, ours['scale_events']):.1f}× fewer scale "
        f"events; backlog-seconds ratio "
        f"{ours['backlog_seconds'] / max(ray['backlog_seconds'], 1e-9):.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
