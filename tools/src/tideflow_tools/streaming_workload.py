"""The reference streaming workload of ``tools/bench/streaming.py`` (shared/BENCH_WORKLOAD.md).

Seeded Parquet input (``id`` int64 unique, ``payload`` ~200 B), the stage functions every
peer runs (a ~2 ms CPU stage, a one-slot "GPU-like" stage sleeping 20 ms per batch, a
~1 ms CPU stage) and the checks made on what they wrote. Everything here is importable by
Ray and Spark workers, which is why it lives in the package and not in the bench script.

The CPU stages' cost is a parameter (:func:`cpu_stages`, sha256 rounds per payload): the
reference workload keeps :data:`CPU1_ROUNDS` and :data:`CPU2_ROUNDS`; the balanced variant
raises the first stage's rounds (:func:`rounds_for_ms`) until it costs as much per batch as
the GPU-like stage (the video case: decoding as heavy as inference).
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "BATCH_SIZE",
    "CPU1_ROUNDS",
    "CPU2_ROUNDS",
    "GPU_LATENCY_S",
    "BusyInterval",
    "GpuLike",
    "OutputCheck",
    "busy_fraction",
    "check_output",
    "cpu_stage",
    "cpu_stage_1",
    "cpu_stage_2",
    "cpu_stages",
    "generate_input",
    "read_busy_log",
    "rounds_for_ms",
    "time_cpu_stages",
]

BATCH_SIZE = 500
"""Rows per batch in every stage."""
GPU_LATENCY_S = 0.020
"""Seconds the GPU-like stage holds its one slot per batch."""
CPU1_ROUNDS = 12
"""sha256 rounds per payload in the first CPU stage (~2 ms per 500-row batch here)."""
CPU2_ROUNDS = 5
"""sha256 rounds per payload in the second CPU stage (~1 ms per 500-row batch here)."""


def generate_input(
    directory: str | Path, *, rows: int = 200_000, rows_per_file: int = 1_000, seed: int = 0
) -> list[Path]:
    """Write ``rows`` rows as ``ceil(rows / rows_per_file)`` Parquet files; return their paths.

    ``id`` runs 0..rows-1 (unique), ``payload`` is 200 characters of seeded hex.
    """
    if rows < 1 or rows_per_file < 1:
        raise ValueError(f"rows and rows_per_file must be >= 1; got {rows}, {rows_per_file}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for index, first in enumerate(range(0, rows, rows_per_file)):
        last = min(rows, first + rows_per_file)
        table = pa.table(
            {
                "id": pa.array(range(first, last), type=pa.int64()),
                "payload": pa.array(
                    [rng.randbytes(100).hex() for _ in range(last - first)], type=pa.string()
                ),
            }
        )
        path = out / f"part-{index:05d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def _sha_chain(payloads: list[str], rounds: int) -> list[str]:
    digests = []
    for payload in payloads:
        h = payload.encode()
        for _ in range(rounds):
            h = hashlib.sha256(h).digest()
        digests.append(h.hex()[:16])
    return digests


def _with_column(table: pa.Table, name: str, values: list[str]) -> pa.Table:
    column = pa.array(values, type=pa.string())
    index = table.schema.get_field_index(name)
    if index >= 0:
        return table.set_column(index, name, column)
    return table.append_column(name, column)


def cpu_stage(table: pa.Table, *, rounds: int, column: str) -> pa.Table:
    """A CPU stage: a chain of ``rounds`` sha256 over each payload → ``column``."""
    payloads = table.column("payload").to_pylist()
    return _with_column(table, column, _sha_chain(payloads, rounds))


def cpu_stage_1(table: pa.Table) -> pa.Table:
    """CPU stage 1 (~2 ms per 500 rows): a sha256 chain over each payload → ``digest``."""
    return cpu_stage(table, rounds=CPU1_ROUNDS, column="digest")


def cpu_stage_2(table: pa.Table) -> pa.Table:
    """CPU stage 2 (~1 ms per 500 rows): a shorter chain over each payload → ``check``."""
    return cpu_stage(table, rounds=CPU2_ROUNDS, column="check")


Stage = Callable[[pa.Table], pa.Table]


def cpu_stages(
    cpu1_rounds: int = CPU1_ROUNDS, cpu2_rounds: int = CPU2_ROUNDS
) -> tuple[Stage, Stage]:
    """The two CPU stages with these costs: the reference functions themselves at the
    reference rounds, else picklable partials of :func:`cpu_stage` (same columns)."""
    if cpu1_rounds < 1 or cpu2_rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {cpu1_rounds}, {cpu2_rounds}")
    first: Stage = (
        cpu_stage_1
        if cpu1_rounds == CPU1_ROUNDS
        else functools.partial(cpu_stage, rounds=cpu1_rounds, column="digest")
    )
    second: Stage = (
        cpu_stage_2
        if cpu2_rounds == CPU2_ROUNDS
        else functools.partial(cpu_stage, rounds=cpu2_rounds, column="check")
    )
    return first, second


class GpuLike:
    """The "GPU-like" stage: one batch at a time, ``latency_s`` per batch.

    Each call appends ``start end rows`` (wall-clock seconds) to ``log_path``, flushed at
    once, so another process can follow the run and read the busy intervals afterwards.
    """

    def __init__(self, log_path: str, latency_s: float = GPU_LATENCY_S) -> None:
        self._latency_s = latency_s
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (held by the actor)

    def __call__(self, table: pa.Table) -> pa.Table:
        start = time.time()
        time.sleep(self._latency_s)
        end = time.time()
        self._log.write(f"{start:.6f} {end:.6f} {table.num_rows}\n")
        self._log.flush()
        return table


@dataclass(frozen=True)
class BusyInterval:
    """One batch the GPU-like stage processed."""

    start: float
    end: float
    rows: int


def read_busy_log(path: str | Path) -> list[BusyInterval]:
    """The intervals written by :class:`GpuLike` (a missing file or torn last line: skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    intervals = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            intervals.append(BusyInterval(float(parts[0]), float(parts[1]), int(parts[2])))
        except ValueError:
            continue
    return intervals


def busy_fraction(intervals: list[BusyInterval]) -> float:
    """Σ busy time ÷ (last end − first start); 0 with fewer than one interval."""
    if not intervals:
        return 0.0
    span = max(i.end for i in intervals) - min(i.start for i in intervals)
    if span <= 0:
        return 0.0
    return sum(i.end - i.start for i in intervals) / span


@dataclass(frozen=True, kw_only=True)
class OutputCheck:
    """What a sink left: rows, and ids missing or written more than once."""

    rows: int
    missing: int
    duplicates: int
    files: int

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.duplicates == 0


def check_output(directory: str | Path, *, expected_rows: int) -> OutputCheck:
    """Read every visible Parquet file under ``directory`` (names starting with ``.``/``_``
    are in-progress or metadata and skipped) and compare its ids with 0..expected_rows-1."""
    root = Path(directory)
    files = sorted(
        p
        for p in root.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
    if not files:
        return OutputCheck(rows=0, missing=expected_rows, duplicates=0, files=0)
    import pyarrow.dataset as pads  # here: it imports pandas (~1 s), which actors don't need

    ids = pads.dataset([str(p) for p in files], format="parquet").to_table(columns=["id"])
    values = ids.column("id").to_numpy()
    unique = set(values.tolist())
    expected = range(expected_rows)
    missing = sum(1 for i in expected if i not in unique)
    return OutputCheck(
        rows=len(values), missing=missing, duplicates=len(values) - len(unique), files=len(files)
    )


def _sample_batch(seed: int) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "id": pa.array(range(BATCH_SIZE), type=pa.int64()),
            "payload": [rng.randbytes(100).hex() for _ in range(BATCH_SIZE)],
        }
    )


def _median_ms(fn: Stage, batch: pa.Table, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(batch)
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def time_cpu_stages(
    repeats: int = 20,
    *,
    seed: int = 0,
    cpu1_rounds: int = CPU1_ROUNDS,
    cpu2_rounds: int = CPU2_ROUNDS,
) -> dict[str, float]:
    """Milliseconds per 500-row batch of each CPU stage on this machine (median)."""
    batch = _sample_batch(seed)
    first, second = cpu_stages(cpu1_rounds, cpu2_rounds)
    return {
        name: round(_median_ms(fn, batch, repeats), 3)
        for name, fn in (("cpu_stage_1_ms", first), ("cpu_stage_2_ms", second))
    }


def rounds_for_ms(target_ms: float, *, repeats: int = 7, seed: int = 0) -> int:
    """sha256 rounds per payload for a CPU stage that takes ``target_ms`` per 500-row batch on
    one core of this machine (a line through two measured round counts)."""
    if target_ms <= 0:
        raise ValueError(f"target_ms must be > 0; got {target_ms}")
    batch = _sample_batch(seed)
    low, high = CPU1_ROUNDS, CPU1_ROUNDS * 10
    low_ms, high_ms = (
        _median_ms(functools.partial(cpu_stage, rounds=r, column="digest"), batch, repeats)
        for r in (low, high)
    )
    per_round = max((high_ms - low_ms) / (high - low), 1e-6)
    return max(1, round(low + (target_ms - low_ms) / per_round))
