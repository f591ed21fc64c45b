"""Streaming benchmark: Tideflow vs Ray Data on one workload (issue 3, acceptance item 5).

The workload of shared/BENCH_WORKLOAD.md — seeded Parquet input, a ~2 ms CPU stage, a
one-slot "GPU-like" stage (20 ms per 500-row batch), a ~1 ms CPU stage, a Parquet sink — run
by Ray Data at its best and by Tideflow, each with checkpoints off and on, then killed
(SIGKILL of the whole process group) at ~50 % and re-run with the same job id. Every run is
a fresh child process with a fresh Ray, on this machine, in this run of the script. Writes
``<out>/streaming.json``; goals: Tideflow with checkpoints ≥ 1.2× Ray Data, checkpoint
overhead ≤ 3 %, GPU-like busy fraction ≥ 0.95.

    uv run python tools/bench/streaming.py [--out bench-results] [--rows 200000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow_tools.bench import write_result
from tideflow_tools.streaming_bench import (
    CHECKPOINT_INTERVAL_S,
    FILES_PER_GROUP,
    RunSpec,
    launch,
)
from tideflow_tools.streaming_bench_report import (
    DEFINITIONS,
    build,
    crash_figures,
    format_table,
    pick_median,
)
from tideflow_tools.streaming_workload import (
    BATCH_SIZE,
    GPU_LATENCY_S,
    check_output,
    generate_input,
    time_cpu_stages,
)

ROWS_PER_FILE = 1_000
QUICK_ROWS = 20_000
KILL_AT = 0.5
"""Kill the first run of the crash test when this share of the rows went through the
GPU-like stage."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _spec(work: Path, name: str, engine: str, rows: int, checkpoint: bool) -> RunSpec:
    return RunSpec(
        engine=engine,  # type: ignore[arg-type]
        input_dir=str(work / "input"),
        output_dir=str(work / name / "out"),
        busy_log=str(work / name / "busy.log"),
        rows=rows,
        job_id=f"bench-{name}",
        checkpoint_dir=str(work / name / "ckpt") if checkpoint else None,
    )


def _throughput_runs(
    work: Path, rows: int, repeats: int, timeout_s: float
) -> dict[str, dict[str, Any]]:
    configs = (
        ("ray_data", "ray_data", False),
        ("tideflow", "tideflow", False),
        ("ray_data_ckpt", "ray_data", True),
        ("tideflow_ckpt", "tideflow", True),
    )
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in configs}
    for repeat in range(repeats):  # interleaved, so drift hits every config alike
        for name, engine, checkpoint in configs:
            label = f"{name}-{repeat}"
            _say(f"  {label} …")
            run = launch(
                label, _spec(work, label, engine, rows, checkpoint), work, timeout_s=timeout_s
            )
            summary = run.summary()
            results[name].append(summary)
            _say(
                f"  {label}: {summary.get('rows_per_s', 'FAILED')} rows/s"
                + (f" ({summary['error']})" if summary.get("error") else "")
            )
    return {name: pick_median(summaries) for name, summaries in results.items()}


def _crash_and_resume(work: Path, engine: str, rows: int, timeout_s: float) -> dict[str, Any]:
    name = f"{engine}_crash"
    killed_spec = _spec(work, name, engine, rows, checkpoint=True)
    _say(f"  {name}: run, SIGKILL at {KILL_AT:.0%} of the rows …")
    killed = launch(
        f"{name}-killed", killed_spec, work, kill_at_rows=int(rows * KILL_AT), timeout_s=timeout_s
    )
    killed_summary = killed.summary()
    if killed.killed_at is None:
        return crash_figures(killed_summary, {}, first_output={}, rows=rows)
    committed = check_output(killed_spec.output_dir, expected_rows=rows)
    killed_summary["committed_rows"] = committed.rows
    resume_spec = RunSpec(
        **{**killed_spec.__dict__, "busy_log": str(work / name / "busy-rerun.log")}
    )
    _say(f"  {name}: re-run with the same job id …")
    resume = launch(f"{name}-rerun", resume_spec, work, timeout_s=timeout_s)
    figures = crash_figures(
        killed_summary, resume.summary(), first_output=resume.first_output_s(), rows=rows
    )
    _say(
        f"  {name}: re-run pushed {figures['rerun_gpu_like_rows']} rows through the GPU-like "
        f"stage" + (f" ({figures['error']})" if figures["error"] else "")
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results", help="result folder")
    parser.add_argument("--rows", type=int, default=200_000, help="input rows (1,000 a file)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows (dev, tests)")
    parser.add_argument("--repeats", type=int, default=1, help="throughput runs per config")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated input")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per engine run")
    parser.add_argument("--workdir", help="keep inputs, outputs and logs here (default: temp)")
    args = parser.parse_args(argv)
    rows = QUICK_ROWS if args.quick else args.rows
    if rows < ROWS_PER_FILE or args.repeats < 1:
        parser.error(f"--rows must be >= {ROWS_PER_FILE} and --repeats >= 1")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tideflow-bench-streaming-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = os.getloadavg()
    if load_before[0] > (os.cpu_count() or 1):
        _say(
            f"warning: load average {load_before[0]:.1f} on {os.cpu_count()} cores: "
            "other work on this machine skews every figure"
        )
    try:
        generate_input(work / "input", rows=rows, rows_per_file=ROWS_PER_FILE, seed=args.seed)
        stage_ms = time_cpu_stages()
        _say(f"streaming bench: {rows:,} rows in {work}")
        runs = _throughput_runs(work, rows, args.repeats, args.timeout)
        crash = {
            engine: _crash_and_resume(work, engine, rows, args.timeout)
            for engine in ("ray_data", "tideflow")
        }
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    metrics, goals, notes = build(runs, crash, rows=rows)
    metrics["bench_wall_s"] = round(time.perf_counter() - started, 1)
    path = write_result(
        args.out,
        "streaming",
        metrics=metrics,
        goals=goals,
        goal_notes=notes,
        definitions=DEFINITIONS,
        setup={
            "rows": rows,
            "files": -(-rows // ROWS_PER_FILE),
            "rows_per_file": ROWS_PER_FILE,
            "seed": args.seed,
            "batch_size": BATCH_SIZE,
            "gpu_like_latency_s": GPU_LATENCY_S,
            "cpu_stage_ms_per_batch": stage_ms,
            "repeats": args.repeats,
            "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
            "kill_at_share_of_rows": KILL_AT,
            "ray_init": "ray.init(num_gpus=1) in a fresh process per run (the GPU is declared: "
            "the GPU-like stage sleeps)",
            "ray_data": "DataContext.use_datasource_v2=False, progress bars off; read_parquet → "
            "map_batches(cpu_stage_1) → map_batches(GpuLike, compute=ActorPoolStrategy(size=1),"
            " num_gpus=1, num_cpus=0) → map_batches(cpu_stage_2) → write_parquet; batch_size="
            f"{BATCH_SIZE}, batch_format=pyarrow; checkpoints: DataContext.checkpoint_config = "
            "ray.data.checkpoint.CheckpointConfig(id_column='id', checkpoint_path=…)",
            "tideflow": f"ParquetSource(files_per_group={FILES_PER_GROUP}), batch_size="
            f"{BATCH_SIZE}; cpu_stage_1 num_cpus=0.5 → GpuLike num_gpus=1 concurrency=1 → "
            "cpu_stage_2 num_cpus=0.5 → ParquetSink; checkpoints: CheckpointConfig(interval_s="
            f"{CHECKPOINT_INTERVAL_S:g})",
        },
    )
    print(format_table(metrics, goals))
    for name, note in notes.items():
        print(f"  {name}: {note[:200]}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
