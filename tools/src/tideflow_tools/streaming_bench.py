"""One engine run of the streaming benchmark: Ray Data or Tideflow on the reference workload.

:func:`run_engine` runs in a process where Ray is up; :func:`launch` runs it in a fresh
child process (its own session, so a SIGKILL of the process group takes Ray down with it),
can kill it when the GPU-like stage has seen a number of rows, and watches for the first
output. The child is ``python -m tideflow_tools.streaming_bench SPEC RESULT``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow_tools.streaming_workload import (
    BATCH_SIZE,
    CPU1_ROUNDS,
    CPU2_ROUNDS,
    GpuLike,
    busy_fraction,
    check_output,
    cpu_stages,
    read_busy_log,
)

__all__ = ["Launch", "RunSpec", "launch", "run_engine"]

Engine = Literal["ray_data", "tideflow"]
CHECKPOINT_INTERVAL_S = 3.0
"""Seconds between Tideflow's checkpoints (Ray Data's are per written block)."""
FILES_PER_GROUP = 8
"""Input files per Tideflow source group (the unit a resume restarts from)."""


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What one engine run reads, writes and logs."""

    engine: Engine
    input_dir: str
    output_dir: str
    busy_log: str
    """The GPU-like stage appends its busy intervals here."""
    rows: int
    """Rows in the input (to check the output against)."""
    job_id: str = "bench-streaming"
    checkpoint_dir: str | None = None
    """Checkpoints on (Ray Data: its row-id checkpointing; Tideflow: every
    ``checkpoint_interval_s``) when set."""
    checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S
    """Seconds between Tideflow's checkpoints."""
    commit_delay_s: float = 0.0
    """Tideflow only: > 0 writes through :class:`SlowCommitParquetSink`, whose every commit
    sleeps this long first (the slow-commit section)."""
    cpu1_rounds: int = CPU1_ROUNDS
    """sha256 rounds of CPU stage 1 (the reference; more for the balanced variant)."""
    cpu2_rounds: int = CPU2_ROUNDS
    """sha256 rounds of CPU stage 2."""
    fused: bool = True
    """Tideflow only: run CPU stages 1 and 2 in the I/O actor (``map_batches(fused=True)``,
    as Ray Data fuses its map into the read tasks) instead of pools of their own. The
    balanced variant, whose CPU stage 1 needs several actors, turns it off."""
    cpu1_actors: int = 1
    """Tideflow only: actors of CPU stage 1 (the balanced variant gives it as many as the
    split peer's Spark gets task slots)."""
    gpu: bool = True
    """Give the GPU-like stage ``num_gpus=1`` (the Ray session must have a GPU resource,
    real or declared with ``ray.init(num_gpus=1)``). False runs it with no GPU request, for
    tests on a shared session that has none."""


def _ray_data(spec: RunSpec) -> dict[str, Any]:
    """Ray Data at its best (BENCH_WORKLOAD.md): V1 Parquet reader, actor pool of one for the
    GPU-like stage with ``num_cpus=0``, ``write_parquet``; its own checkpointing when asked."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext
    from ray.data.checkpoint import CheckpointConfig

    ctx = DataContext.get_current()
    saved = (ctx.use_datasource_v2, ctx.checkpoint_config, ctx.enable_progress_bars)
    ctx.use_datasource_v2 = False  # V2 plans one task and one 200k-row block: no streaming
    ctx.enable_progress_bars = False
    ctx.checkpoint_config = (
        CheckpointConfig(id_column="id", checkpoint_path=spec.checkpoint_dir)
        if spec.checkpoint_dir
        else None
    )
    cpu_stage_1, cpu_stage_2 = cpu_stages(spec.cpu1_rounds, spec.cpu2_rounds)
    try:
        started = time.time()
        (
            ray.data.read_parquet(spec.input_dir)
            .map_batches(
                cpu_stage_1,
                batch_size=BATCH_SIZE,
                batch_format="pyarrow",
                udf_modifying_row_count=False,
            )
            .map_batches(
                GpuLike,
                fn_constructor_kwargs={"log_path": spec.busy_log},
                batch_size=BATCH_SIZE,
                batch_format="pyarrow",
                compute=ActorPoolStrategy(size=1),
                num_cpus=0,
                num_gpus=1 if spec.gpu else 0,
                udf_modifying_row_count=False,
            )
            .map_batches(
                cpu_stage_2,
                batch_size=BATCH_SIZE,
                batch_format="pyarrow",
                udf_modifying_row_count=False,
            )
            .write_parquet(spec.output_dir)
        )
        ended = time.time()
    finally:
        ctx.use_datasource_v2, ctx.checkpoint_config, ctx.enable_progress_bars = saved
    return {"started": started, "ended": ended, "engine": {}}


def _tideflow(spec: RunSpec) -> dict[str, Any]:
    """Tideflow: the same stages, checkpoints every 3 s when asked (the lead's API, issue 3)."""
    from tideflow.streaming import CheckpointConfig, Pipeline
    from tideflow.streaming.connectors import ParquetSink, ParquetSource
    from tideflow_tools.streaming_bench_sinks import SlowCommitParquetSink

    checkpoint = (
        CheckpointConfig(uri=spec.checkpoint_dir, interval_s=spec.checkpoint_interval_s)
        if spec.checkpoint_dir
        else None
    )
    sink = (
        SlowCommitParquetSink(spec.output_dir, commit_delay_s=spec.commit_delay_s)
        if spec.commit_delay_s > 0
        else ParquetSink(spec.output_dir)
    )
    cpu_stage_1, cpu_stage_2 = cpu_stages(spec.cpu1_rounds, spec.cpu2_rounds)
    # Two CPU-stage-1 actors need 0.25 CPU each to fit 2 cores beside the GPU-like actor.
    cpu1_cpus = 0.5 if spec.cpu1_actors == 1 else 0.5 / spec.cpu1_actors
    started = time.time()
    result = (
        Pipeline.read(
            ParquetSource(spec.input_dir, files_per_group=FILES_PER_GROUP), batch_size=BATCH_SIZE
        )
        .map_batches(
            cpu_stage_1,
            name="cpu_stage_1",
            num_cpus=cpu1_cpus,
            concurrency=spec.cpu1_actors,
            fused=spec.fused,
        )
        .map_batches(
            GpuLike,
            concurrency=1,
            fn_constructor_kwargs={"log_path": spec.busy_log},
            num_gpus=1 if spec.gpu else 0,
        )
        .map_batches(cpu_stage_2, name="cpu_stage_2", num_cpus=0.5, fused=spec.fused)
        .write(sink)
        .run(job_id=spec.job_id, checkpoint=checkpoint)
    )
    ended = time.time()
    durations = [float(c.duration_s) for c in result.checkpoints if c.duration_s is not None]
    return {
        "started": started,
        "ended": ended,
        "engine": {
            "wall_s": round(float(result.wall_s), 3),
            "rows_out": int(result.rows_out),
            "stage_busy_fraction": {
                name: round(float(stage.busy_fraction), 4) for name, stage in result.stages.items()
            },
            "checkpoint_durations_s": [round(d, 4) for d in durations],
            "checkpoint_save_s": [
                round(float(c.save_s), 4) for c in result.checkpoints if c.save_s is not None
            ],
            "restored_from": getattr(result, "restored_from", None),
        },
    }


_ENGINES = {"ray_data": _ray_data, "tideflow": _tideflow}


def run_engine(spec: RunSpec) -> dict[str, Any]:
    """Run ``spec`` on the Ray session of this process and return its record.

    The record has ``ok``, ``error``, ``started``/``ended`` (wall clock, just before the
    read and after the sink's last commit), ``rows_per_s``, the GPU-like stage's busy
    intervals summarized, the output check and the engine's own figures.
    """
    record: dict[str, Any] = {"engine": spec.engine, "ok": False, "error": None}
    try:
        timing = _ENGINES[spec.engine](spec)
    except BaseException as error:  # recorded, never raised: the bench writes every run
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc(limit=8)
        return record
    wall = timing["ended"] - timing["started"]
    output = check_output(spec.output_dir, expected_rows=spec.rows)
    record.update(
        ok=True,
        started=timing["started"],
        ended=timing["ended"],
        wall_s=round(wall, 3),
        rows_out=output.rows,
        rows_per_s=round(output.rows / wall, 1) if wall > 0 else 0.0,
        output={**asdict(output), "exact": output.exact},
        engine_metrics=timing["engine"],
    )
    return record


# --- the child process and its launcher ---------------------------------------------


def _child(spec_path: str, result_path: str) -> int:
    spec = RunSpec(**json.loads(Path(spec_path).read_text(encoding="utf-8")))
    boot = time.time()
    record: dict[str, Any]
    try:  # fail fast, before starting Ray, when an engine's API is not importable
        if spec.engine == "tideflow":
            from tideflow.streaming import CheckpointConfig, Pipeline  # noqa: F401
            from tideflow.streaming.connectors import ParquetSink, ParquetSource  # noqa: F401
        import ray

        ray.init(
            num_gpus=1 if spec.gpu else 0,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=os.environ.get("TIDEFLOW_BENCH_RAY_TMP") or None,
        )
    except BaseException as error:
        record = {
            "engine": spec.engine,
            "ok": False,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=8),
        }
    else:
        record = run_engine(spec)
    record["boot"] = boot
    Path(result_path).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return 0 if record["ok"] else 1


@dataclass(kw_only=True)
class Launch:
    """What the launcher saw of one child run."""

    name: str
    spec: RunSpec
    launched: float
    """Wall clock when the child was started (the restart, for a resumed run)."""
    returncode: int | None = None
    killed_at: float | None = None
    """Wall clock of the SIGKILL, if the run was killed on purpose."""
    timed_out: bool = False
    first_file_seen: float | None = None
    """Wall clock when a new committed output file was first seen (polled every 50 ms)."""
    record: dict[str, Any] = field(default_factory=dict)
    """The child's record (:func:`run_engine`); empty when it was killed."""
    log_tail: str = ""

    def summary(self) -> dict[str, Any]:
        """The run's figures for the result file."""
        intervals = read_busy_log(self.spec.busy_log)
        out: dict[str, Any] = {
            "ok": bool(self.record.get("ok")) and not self.timed_out,
            "error": self.record.get("error")
            or ("timed out" if self.timed_out else None)
            or (None if self.killed_at or self.returncode == 0 else self._exit_error()),
        }
        for key in ("wall_s", "rows_per_s", "rows_out", "output", "engine_metrics"):
            if key in self.record:
                out[key] = self.record[key]
        out["gpu_like_rows"] = sum(i.rows for i in intervals)
        out["gpu_like_batches"] = len(intervals)
        out["gpu_like_busy_s"] = round(sum(i.end - i.start for i in intervals), 3)
        out["gpu_like_busy_fraction"] = round(busy_fraction(intervals), 4)
        if intervals and "started" in self.record:
            first = min(i.start for i in intervals)
            last = max(i.end for i in intervals)
            out["phases_s"] = {
                "ray_start": round(self.record["started"] - self.record["boot"], 3),
                "to_first_gpu_like_batch": round(first - self.record["started"], 3),
                "gpu_like_span": round(last - first, 3),
                "after_last_gpu_like_batch": round(self.record["ended"] - last, 3),
            }
        if self.killed_at is not None:
            out["killed_after_s"] = round(self.killed_at - self.launched, 3)
        return out

    def _exit_error(self) -> str:
        tail = self.log_tail.strip().splitlines()[-3:]
        return f"child exited with {self.returncode}: " + " | ".join(tail)

    def first_output_s(self) -> dict[str, float | None]:
        """Seconds from launch (and from Ray being ready) to the first output: the first
        GPU-like interval's start or the first new committed file, whichever came first."""
        starts = [i.start for i in read_busy_log(self.spec.busy_log)]
        candidates = [t for t in (min(starts, default=None), self.first_file_seen) if t]
        if not candidates:
            return {"from_restart_s": None, "from_ray_ready_s": None}
        first = min(candidates)
        ready = self.record.get("started")
        return {
            "from_restart_s": round(first - self.launched, 3),
            "from_ray_ready_s": round(first - ready, 3) if ready else None,
        }


def _visible_files(directory: Path) -> set[Path]:
    if not directory.exists():
        return set()
    return {
        p
        for p in directory.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(directory).parts)
    }


def _kill_session(session_id: int) -> None:
    """SIGKILL every process left in the child's session (its Ray processes included)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == session_id:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def launch(
    name: str,
    spec: RunSpec,
    workdir: str | Path,
    *,
    kill_at_rows: int | None = None,
    timeout_s: float = 300.0,
) -> Launch:
    """Run ``spec`` in a fresh child process with a fresh Ray; SIGKILL its whole process
    group once the GPU-like stage has logged ``kill_at_rows`` rows (if given)."""
    work = Path(workdir)
    spec_path, result_path, log_path = (work / f"{name}.{ext}" for ext in ("spec", "json", "log"))
    spec_path.write_text(json.dumps(asdict(spec)), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    ray_tmp = tempfile.mkdtemp(prefix="tf-ray-", dir="/tmp")  # short: Ray's socket paths
    env = {**os.environ, "TIDEFLOW_BENCH_RAY_TMP": ray_tmp}
    output_dir = Path(spec.output_dir)
    before = _visible_files(output_dir)
    command = [sys.executable, "-m", "tideflow_tools.streaming_bench", str(spec_path)]
    with open(log_path, "w", encoding="utf-8") as log:
        run = Launch(name=name, spec=spec, launched=time.time())
        child = subprocess.Popen(
            [*command, str(result_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            while child.poll() is None:
                now = time.time()
                if run.first_file_seen is None and _visible_files(output_dir) - before:
                    run.first_file_seen = now
                if kill_at_rows is not None and (
                    sum(i.rows for i in read_busy_log(spec.busy_log)) >= kill_at_rows
                ):
                    os.killpg(child.pid, signal.SIGKILL)
                    run.killed_at = now
                    break
                if now - run.launched > timeout_s:
                    os.killpg(child.pid, signal.SIGKILL)
                    run.timed_out = True
                    break
                time.sleep(0.05)
            run.returncode = child.wait()
        finally:
            _kill_session(child.pid)
            shutil.rmtree(ray_tmp, ignore_errors=True)
    if run.first_file_seen is None and _visible_files(output_dir) - before:
        run.first_file_seen = time.time()  # appeared in the last poll interval
    if result_path.exists():
        run.record = json.loads(result_path.read_text(encoding="utf-8"))
    run.log_tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
    return run


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2]))
