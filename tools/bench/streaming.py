"""Streaming benchmark: Tideflow vs Ray Data and vs the split architecture (issues 3 and 18).

The workload of shared/BENCH_WORKLOAD.md — seeded Parquet input, a ~2 ms CPU stage, a
one-slot "GPU-like" stage (20 ms per 500-row batch), a ~1 ms CPU stage, a Parquet sink — run
by Ray Data at its best and by Tideflow, each with checkpoints off and on, then killed
(SIGKILL of the whole process group) at ~50 % and re-run with the same job id. Every run is
a fresh child process with a fresh Ray, on this machine, in this run of the script.

Issue 18 adds two sections. The split peer (the seed's baseline): CPU stage 1 as a Spark
batch job (PySpark ``local[2]``) writing Parquet, then the GPU-like stage, CPU stage 2 and
the sink as a separate service reading those files; against Tideflow on the reference
workload and on a balanced one whose CPU stage 1 costs as much per batch as the GPU-like
stage (``--balanced-cpu-ms``, default its 20 ms). The slow commit: Tideflow with
checkpoints every 1 s, writing through the Parquet sink and through the same sink whose
commit sleeps 2 s. Repeats are interleaved (Tideflow, split, Tideflow, split …) and
figures are medians.

Writes ``<out>/streaming.json``; goals: Tideflow with checkpoints ≥ 1.3× Ray Data,
checkpoint overhead ≤ 3 %, GPU-like busy fraction ≥ 0.97, Tideflow ÷ split on the balanced
workload ≥ 0.9 of the overlap bound (C + G) / max(C, G), and the GPU-like stage's busy
fraction with a 2 s commit within 5 % of that with an instant one. The split peer needs the
workspace's ``spark`` group (``make bench-streaming`` syncs it; without it, its goal is
written as missed with the install hint).

    uv run --group spark python tools/bench/streaming.py [--out bench-results] [--quick]
        [--rows 200000] [--repeats 1] [--balanced-cpu-ms 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow_tools.bench import say, write_result
from tideflow_tools.streaming_bench import (
    CHECKPOINT_INTERVAL_S,
    FILES_PER_GROUP,
    RunSpec,
    launch,
)
from tideflow_tools.streaming_bench_report import (
    CONFIGS,
    DEFINITIONS,
    build,
    build_peers,
    crash_figures,
    format_table,
    pick_median,
    slow_commit_figures,
    split_figures,
)
from tideflow_tools.streaming_split import SPARK_SLOTS, SplitSpec, java_version, run_split
from tideflow_tools.streaming_workload import (
    BATCH_SIZE,
    CPU1_ROUNDS,
    CPU2_ROUNDS,
    GPU_LATENCY_S,
    check_output,
    generate_input,
    rounds_for_ms,
    time_cpu_stages,
)

ROWS_PER_FILE = 1_000
QUICK_ROWS = 20_000
KILL_AT = 0.5
"""Kill the first run of the crash test when this share of the rows went through the
GPU-like stage."""
SLOW_COMMIT_INTERVAL_S = 1.0
"""Seconds between checkpoints in the slow-commit section (issue 18: every 1 s)."""
SLOW_COMMIT_DELAY_S = 2.0
"""Seconds each commit of the slow sink sleeps."""
BALANCED_CPU_MS = GPU_LATENCY_S * 1000
"""CPU stage 1 of the balanced workload, ms per batch on one core: what the GPU-like stage
costs per batch (issue 18: "the CPU stages cost about as much per batch as the GPU-like
stage"; the seed's video case, decoding as heavy as inference). Spark spreads it over its
slots, so its phase C is shorter than G; ``--balanced-cpu-ms 40`` makes C ≈ G instead
(a bound near 2, and a CPU-bound Tideflow on 2 cores)."""

Runner = Callable[[str], dict[str, Any]]


def _spec(
    work: Path, name: str, engine: str, rows: int, checkpoint: bool, **options: Any
) -> RunSpec:
    return RunSpec(
        engine=engine,  # type: ignore[arg-type]
        input_dir=str(work / "input"),
        output_dir=str(work / name / "out"),
        busy_log=str(work / name / "busy.log"),
        rows=rows,
        job_id=f"bench-{name}",
        checkpoint_dir=str(work / name / "ckpt") if checkpoint else None,
        **options,
    )


def _engine(work: Path, engine: str, rows: int, timeout_s: float, **options: Any) -> Runner:
    """A run of ``engine`` in a fresh child process (its label names its folder)."""

    def run(label: str) -> dict[str, Any]:
        spec = _spec(work, label, engine, rows, **options)
        return launch(label, spec, work, timeout_s=timeout_s).summary()

    return run


def _split(work: Path, rows: int, timeout_s: float, *, cpu1_rounds: int) -> Runner:
    """A run of the split peer: a Spark job, then the GPU-like service."""

    def run(label: str) -> dict[str, Any]:
        spec = SplitSpec(
            input_dir=str(work / "input"),
            staging_dir=str(work / label / "staged"),
            output_dir=str(work / label / "out"),
            busy_log=str(work / label / "busy.log"),
            rows=rows,
            cpu1_rounds=cpu1_rounds,
            cpu2_rounds=CPU2_ROUNDS,
            slots=SPARK_SLOTS,
        )
        return run_split(label, spec, work, timeout_s=timeout_s)

    return run


def _interleaved(configs: dict[str, Runner], repeats: int) -> dict[str, list[dict[str, Any]]]:
    """Every config ``repeats`` times, interleaved, so drift hits every config alike."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    for repeat in range(repeats):
        for name, run in configs.items():
            label = f"{name}-{repeat}"
            say(f"  {label} …")
            summary = run(label)
            results[name].append(summary)
            say(
                f"  {label}: {summary.get('rows_per_s', 'FAILED')} rows/s"
                + (f" ({summary['error']})" if summary.get("error") else "")
            )
    return results


def _crash_and_resume(work: Path, engine: str, rows: int, timeout_s: float) -> dict[str, Any]:
    name = f"{engine}_crash"
    killed_spec = _spec(work, name, engine, rows, checkpoint=True)
    say(f"  {name}: run, SIGKILL at {KILL_AT:.0%} of the rows …")
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
    say(f"  {name}: re-run with the same job id …")
    resume = launch(f"{name}-rerun", resume_spec, work, timeout_s=timeout_s)
    figures = crash_figures(
        killed_summary, resume.summary(), first_output=resume.first_output_s(), rows=rows
    )
    say(
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
    parser.add_argument(
        "--balanced-cpu-ms",
        type=float,
        default=BALANCED_CPU_MS,
        help="CPU stage 1 of the balanced workload, ms per batch on one core "
        f"(default {BALANCED_CPU_MS:g}: the GPU-like stage's cost per batch)",
    )
    args = parser.parse_args(argv)
    rows = QUICK_ROWS if args.quick else args.rows
    if rows < ROWS_PER_FILE or args.repeats < 1 or args.balanced_cpu_ms <= 0:
        parser.error(f"--rows must be >= {ROWS_PER_FILE}, --repeats >= 1 and --balanced-cpu-ms > 0")
    batches = -(-rows // BATCH_SIZE)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tideflow-bench-streaming-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = os.getloadavg()
    if load_before[0] > (os.cpu_count() or 1):
        say(
            f"warning: load average {load_before[0]:.1f} on {os.cpu_count()} cores: "
            "other work on this machine skews every figure"
        )
    try:
        generate_input(work / "input", rows=rows, rows_per_file=ROWS_PER_FILE, seed=args.seed)
        stage_ms = time_cpu_stages()
        balanced_rounds = rounds_for_ms(args.balanced_cpu_ms)
        balanced_ms = time_cpu_stages(cpu1_rounds=balanced_rounds)
        timeout = args.timeout
        say(f"streaming bench: {rows:,} rows in {work}")
        say("reference workload: Ray Data, Tideflow and the split peer")
        raw = _interleaved(
            {
                "ray_data": _engine(work, "ray_data", rows, timeout, checkpoint=False),
                "tideflow": _engine(work, "tideflow", rows, timeout, checkpoint=False),
                "ray_data_ckpt": _engine(work, "ray_data", rows, timeout, checkpoint=True),
                "tideflow_ckpt": _engine(work, "tideflow", rows, timeout, checkpoint=True),
                "split": _split(work, rows, timeout, cpu1_rounds=CPU1_ROUNDS),
            },
            args.repeats,
        )
        runs = {name: pick_median(raw[name]) for name in CONFIGS}
        say(f"slow commit: checkpoints every {SLOW_COMMIT_INTERVAL_S:g} s, commit instant/slow")
        commits = _interleaved(
            {
                name: _engine(
                    work,
                    "tideflow",
                    rows,
                    timeout,
                    checkpoint=True,
                    checkpoint_interval_s=SLOW_COMMIT_INTERVAL_S,
                    commit_delay_s=delay,
                )
                for name, delay in (("commit_instant", 0.0), ("commit_slow", SLOW_COMMIT_DELAY_S))
            },
            args.repeats,
        )
        say(f"balanced workload: CPU stage 1 at {balanced_ms['cpu_stage_1_ms']:g} ms per batch")
        balanced = _interleaved(
            {
                "tideflow_balanced": _engine(
                    work,
                    "tideflow",
                    rows,
                    timeout,
                    checkpoint=True,
                    cpu1_rounds=balanced_rounds,
                    cpu1_actors=SPARK_SLOTS,
                    fused=False,
                ),
                "split_balanced": _split(work, rows, timeout, cpu1_rounds=balanced_rounds),
            },
            args.repeats,
        )
        crash = {
            engine: _crash_and_resume(work, engine, rows, args.timeout)
            for engine in ("ray_data", "tideflow")
        }
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    metrics, goals, notes = build(runs, crash, rows=rows)
    peer_metrics, peer_goals, peer_notes = build_peers(
        {
            "reference": split_figures(raw["tideflow_ckpt"], raw["split"], batches=batches),
            "balanced": split_figures(
                balanced["tideflow_balanced"], balanced["split_balanced"], batches=batches
            ),
        },
        slow_commit_figures(commits["commit_instant"], commits["commit_slow"]),
    )
    metrics.update(peer_metrics)
    goals.update(peer_goals)
    notes.update(peer_notes)
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
            f"{BATCH_SIZE}; cpu_stage_1 fused=True (in the I/O actor, as Ray Data fuses it "
            "into its read tasks) → GpuLike num_gpus=1 concurrency=1 → cpu_stage_2 fused=True → "
            "ParquetSink; checkpoints: CheckpointConfig(interval_s="
            f"{CHECKPOINT_INTERVAL_S:g})",
            "split": f"phase 1: SparkSession local[{SPARK_SLOTS}], spark.read.parquet → "
            "mapInArrow(cpu_stage_1) with arrow.maxRecordsPerBatch="
            f"{BATCH_SIZE}, ~4 input splits per slot → write.parquet (staging, _SUCCESS); "
            "phase 2: a service process started before the job, polling for _SUCCESS → "
            f"{BATCH_SIZE}-row batches → GpuLike (one slot) → cpu_stage_2 and a ParquetWriter "
            "on a thread beside it → rename into the output folder",
            "java": java_version(),
            "balanced": {
                "target_cpu_stage_1_ms": args.balanced_cpu_ms,
                "cpu1_rounds": balanced_rounds,
                "cpu2_rounds": CPU2_ROUNDS,
                "cpu_stage_ms_per_batch": balanced_ms,
                "tideflow": f"cpu_stage_1 concurrency={SPARK_SLOTS} num_cpus="
                f"{0.5 / SPARK_SLOTS:g} (as many actors as Spark has slots), both CPU stages "
                "in pools of their own (not fused); otherwise as above, checkpoints every "
                f"{CHECKPOINT_INTERVAL_S:g} s",
            },
            "slow_commit": {
                "checkpoint_interval_s": SLOW_COMMIT_INTERVAL_S,
                "commit_delay_s": SLOW_COMMIT_DELAY_S,
                "sink": "tideflow_tools.streaming_bench_sinks.SlowCommitParquetSink (ParquetSink"
                " that sleeps before each commit) vs ParquetSink",
            },
        },
    )
    print(format_table(metrics, goals))
    for name, note in notes.items():
        print(f"  {name}: {note[:200]}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
