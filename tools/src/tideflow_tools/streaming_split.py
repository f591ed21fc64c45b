"""The split peer of the streaming benchmark: the seed's architecture, a batch job then a service.

Phase 1 is the CPU stage before the GPU-like stage as a Spark batch job (PySpark, ``local[2]``):
``read.parquet`` of the workload's input → ``mapInArrow`` running the same function
(:func:`~tideflow_tools.streaming_workload.cpu_stages`) on 500-row Arrow batches →
``write.parquet`` to a staging folder, ended by Spark's ``_SUCCESS`` marker. Phase 2 is a
separate service process, started before the job and waiting for that marker: it reads the
staged files in 500-row batches through one :class:`~tideflow_tools.streaming_workload.GpuLike`
slot, then runs the last CPU stage and writes Parquet (on a thread of its own, so the slot
never waits for them), and moves the file into the output folder when done.

Figures: ``cpu_phase_s`` (C: just before the read to the hand-over, the return of the write
or the service seeing ``_SUCCESS`` if that came first; the JVM's start is not counted, like
Ray's), ``gpu_phase_s`` (G: the service seeing ``_SUCCESS`` to
its output committed), and the total, just before the read to the output committed. The
children are ``python -m tideflow_tools.streaming_split spark|service SPEC RESULT``; the
``spark`` group of the workspace installs PySpark (``make bench-streaming`` syncs it).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tideflow_tools.streaming_workload import (
    BATCH_SIZE,
    CPU1_ROUNDS,
    CPU2_ROUNDS,
    GPU_LATENCY_S,
    GpuLike,
    busy_fraction,
    check_output,
    cpu_stages,
    read_busy_log,
)

__all__ = ["SPARK_SLOTS", "SplitSpec", "java_version", "run_split", "serve", "summarize"]

SPARK_SLOTS = 2
"""Spark's task slots: ``local[2]``, the cores of the machine the figures come from."""
INSTALL_HINT = (
    "pyspark is not installed: `make bench-streaming` installs it "
    "(or `uv sync --locked --group spark`)"
)
_JAVA17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
_SUCCESS = "_SUCCESS"


@dataclass(frozen=True, kw_only=True)
class SplitSpec:
    """What one split run reads, stages, writes and logs."""

    input_dir: str
    staging_dir: str
    """Where the Spark job writes (the hand-off between the phases)."""
    output_dir: str
    busy_log: str
    """The GPU-like slot of the service appends its busy intervals here."""
    rows: int
    """Rows in the input (to check the output against)."""
    cpu1_rounds: int = CPU1_ROUNDS
    cpu2_rounds: int = CPU2_ROUNDS
    gpu_latency_s: float = GPU_LATENCY_S
    slots: int = SPARK_SLOTS
    """``local[slots]``."""


# --- phase 1: the Spark batch job ------------------------------------------------------


def _cpu_phase(batches: Iterator[pa.RecordBatch], *, rounds: int) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``'s function: CPU stage 1 on each Arrow batch Spark hands over."""
    stage, _ = cpu_stages(rounds, CPU2_ROUNDS)
    for batch in batches:
        yield from stage(pa.Table.from_batches([batch])).combine_chunks().to_batches()


def _input_bytes(directory: str) -> int:
    return sum(p.stat().st_size for p in Path(directory).glob("*.parquet"))


def _spark(spec: SplitSpec) -> dict[str, Any]:
    # PySpark is an optional group (not in CI's env): no stubs there, its own types here.
    from pyspark.sql import SparkSession  # type: ignore[import-not-found, unused-ignore]

    # Spark at its best on these files: 500-row Arrow batches (the workload's batch size),
    # plain string vectors (what the stage functions build), and ~4 input splits per slot
    # (its default packs 200 small files into a few uneven partitions).
    split_bytes = max(1 << 16, _input_bytes(spec.input_dir) // (4 * spec.slots))
    spark = (
        SparkSession.builder.master(f"local[{spec.slots}]")
        .appName("tideflow-bench-split")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_SIZE))
        .config("spark.sql.execution.arrow.useLargeVarTypes", "false")
        .config("spark.sql.files.maxPartitionBytes", str(split_bytes))
        .config("spark.sql.files.openCostInBytes", "0")
        .config("spark.sql.parquet.compression.codec", "snappy")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        started = time.time()
        frame = spark.read.parquet(spec.input_dir)
        planned = time.time()  # the listing and footer job of the read are behind us
        (
            frame.mapInArrow(
                functools.partial(_cpu_phase, rounds=spec.cpu1_rounds),
                "id long, payload string, digest string",
            )
            .write.mode("overwrite")
            .parquet(spec.staging_dir)
        )
        ended = time.time()
        partitions = frame.rdd.getNumPartitions()
    finally:
        spark.stop()
    return {"started": started, "planned": planned, "ended": ended, "partitions": partitions}


# --- phase 2: the GPU-like service -----------------------------------------------------


def _staged_batches(directory: Path) -> Iterator[pa.Table]:
    """The staged rows in batches of exactly ``BATCH_SIZE`` (the last one: what is left)."""
    files = sorted(p for p in directory.glob("*.parquet") if not p.name.startswith(("_", ".")))
    pending: list[pa.RecordBatch] = []
    held = 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_SIZE):
            pending.append(batch)
            held += batch.num_rows
            while held >= BATCH_SIZE:
                table = pa.Table.from_batches(pending).combine_chunks()
                yield table.slice(0, BATCH_SIZE)
                rest = table.slice(BATCH_SIZE)
                pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks()


def serve(spec: SplitSpec, *, deadline: float) -> dict[str, Any]:
    """Phase 2, in this process: wait for the Spark job's ``_SUCCESS`` (until ``deadline``,
    wall clock), push the staged rows through the GPU-like slot, CPU stage 2 and the sink;
    return the wall-clock times it was ready, saw the marker, and committed its output."""
    staging, out = Path(spec.staging_dir), Path(spec.output_dir)
    gpu = GpuLike(spec.busy_log, latency_s=spec.gpu_latency_s)
    _, cpu_stage_2 = cpu_stages(spec.cpu1_rounds, spec.cpu2_rounds)
    ready = time.time()
    while not (staging / _SUCCESS).exists():
        if time.time() > deadline:
            raise TimeoutError(f"no {_SUCCESS} in {staging}")
        time.sleep(0.005)
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    hidden = out / ".part-00000.parquet.inprogress"
    handoff: queue.Queue[pa.Table | None] = queue.Queue(maxsize=4)
    failure: list[BaseException] = []

    def write() -> None:  # the last CPU stage and the sink, beside the GPU-like slot
        writer: pq.ParquetWriter | None = None
        try:
            while (table := handoff.get()) is not None:
                table = cpu_stage_2(table)
                if writer is None:
                    writer = pq.ParquetWriter(hidden, table.schema)
                writer.write_table(table)
        except BaseException as error:
            failure.append(error)
            while handoff.get() is not None:  # drain, so the producer never blocks
                pass
        finally:
            if writer is not None:
                writer.close()

    thread = threading.Thread(target=write, name="sink")
    thread.start()
    try:
        for table in _staged_batches(staging):
            handoff.put(gpu(table))
            if failure:
                break
    finally:
        handoff.put(None)
        thread.join()
    if failure:
        raise failure[0]
    if hidden.exists():
        hidden.rename(out / "part-00000.parquet")  # the commit
    return {"ready": ready, "started": started, "ended": time.time()}


# --- the children and their launcher --------------------------------------------------


def _child(role: str, spec_path: str, result_path: str) -> int:
    spec = SplitSpec(**json.loads(Path(spec_path).read_text(encoding="utf-8")))
    record: dict[str, Any] = {"role": role, "boot": time.time(), "ok": False, "error": None}
    try:
        if role == "spark":
            record.update(_spark(spec))
        else:
            record.update(serve(spec, deadline=float(os.environ["TIDEFLOW_SPLIT_DEADLINE"])))
        record["ok"] = True
    except BaseException as error:  # recorded, never raised: the bench writes every run
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc(limit=8)
    Path(result_path).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return 0 if record["ok"] else 1


def _java_env() -> dict[str, str]:
    """The children's environment: this Python for Spark's workers; Java 17 when no
    ``JAVA_HOME`` is set and the Debian JDK 17 is there (Spark 4 needs 17 or later)."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    if "JAVA_HOME" not in env and _JAVA17.is_dir():
        env["JAVA_HOME"] = str(_JAVA17)
    return env


def java_version() -> str | None:
    """The first line of ``java -version`` as Spark's children will run it (None: no Java)."""
    env = _java_env()
    java = str(Path(env["JAVA_HOME"]) / "bin" / "java") if "JAVA_HOME" in env else "java"
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False, env=env
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else None


def _start(role: str, spec_path: Path, work: Path, name: str, env: dict[str, str]) -> Any:
    result = work / f"{name}-{role}.json"
    result.unlink(missing_ok=True)
    log = open(work / f"{name}-{role}.log", "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    command = [sys.executable, "-m", "tideflow_tools.streaming_split", role, str(spec_path)]
    process = subprocess.Popen(
        [*command, str(result)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    return process, log, result


def run_split(
    name: str, spec: SplitSpec, workdir: str | Path, *, timeout_s: float
) -> dict[str, Any]:
    """Run the split peer once (the service, then the Spark job, each a fresh process) and
    return its figures in the shape of the other peers' runs (``ok``, ``rows_per_s``,
    ``wall_s``, ``output``, ``gpu_like_*``, ``phases_s``) plus ``cpu_phase_s`` and
    ``gpu_phase_s``."""
    if importlib.util.find_spec("pyspark") is None:
        return {"ok": False, "error": INSTALL_HINT}
    work = Path(workdir)
    spec_path = work / f"{name}.split-spec"
    spec_path.write_text(json.dumps(asdict(spec)), encoding="utf-8")
    for folder in (spec.staging_dir, spec.output_dir):
        shutil.rmtree(folder, ignore_errors=True)
    Path(spec.busy_log).unlink(missing_ok=True)
    launched = time.time()
    env = {**_java_env(), "TIDEFLOW_SPLIT_DEADLINE": str(launched + timeout_s)}
    children = [_start(role, spec_path, work, name, env) for role in ("service", "spark")]
    (service, _, _), (spark, _, _) = children
    timed_out = False
    try:
        while service.poll() is None and spark.poll() in (None, 0):  # a failed job: stop
            if time.time() - launched > timeout_s:
                timed_out = True
                break
            time.sleep(0.05)
        if not timed_out:  # the job's own stop (not counted) ends after the service
            try:
                spark.wait(timeout=max(launched + timeout_s - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        for process, log, _ in children:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.close()
            # the JVM and Spark's Python workers, when a child left them behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
    records = {}
    for (_, log, result), role in zip(children, ("service", "spark"), strict=True):
        if result.exists():
            records[role] = json.loads(result.read_text(encoding="utf-8"))
        else:
            tail = Path(log.name).read_text(encoding="utf-8", errors="replace").strip()
            records[role] = {"ok": False, "error": f"no result: {tail[-300:]}"}
    return summarize(spec, records["spark"], records["service"], timed_out=timed_out)


def summarize(
    spec: SplitSpec, spark: dict[str, Any], service: dict[str, Any], *, timed_out: bool = False
) -> dict[str, Any]:
    """The figures of one split run from its two children's records."""
    error = next(
        (
            f"{role}: {r.get('error')}"
            for role, r in (("spark", spark), ("service", service))
            if not r.get("ok")
        ),
        "timed out" if timed_out else None,
    )
    intervals = read_busy_log(spec.busy_log)
    busy_s = sum(i.end - i.start for i in intervals)
    out: dict[str, Any] = {
        "ok": error is None,
        "error": error,
        "gpu_like_rows": sum(i.rows for i in intervals),
        "gpu_like_batches": len(intervals),
        "gpu_like_busy_s": round(busy_s, 3),
        "gpu_like_busy_fraction": round(busy_fraction(intervals), 4),
    }
    if error is not None:
        return out
    wall = service["ended"] - spark["started"]
    # Spark writes _SUCCESS a little before its write returns (job-end cleanup): the data is
    # handed over at whichever comes first.
    handed_over = min(spark["ended"], service["started"])
    output = check_output(spec.output_dir, expected_rows=spec.rows)
    out.update(
        wall_s=round(wall, 3),
        rows_out=output.rows,
        rows_per_s=round(output.rows / wall, 1) if wall > 0 else 0.0,
        output={**asdict(output), "exact": output.exact},
        cpu_phase_s=round(handed_over - spark["started"], 3),
        gpu_phase_s=round(service["ended"] - service["started"], 3),
        spark_partitions=spark.get("partitions"),
        phases_s={
            "spark_start": round(spark["started"] - spark["boot"], 3),
            "cpu_phase": round(handed_over - spark["started"], 3),
            "cpu_phase_read_planning": round(
                spark.get("planned", spark["started"]) - spark["started"], 3
            ),
            "handoff": round(service["started"] - handed_over, 3),
            "gpu_phase": round(service["ended"] - service["started"], 3),
        },
    )
    if not output.exact:
        out["ok"] = False
        out["error"] = f"output not exact: {output.missing} missing, {output.duplicates} duplicates"
    return out


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], sys.argv[3]))
