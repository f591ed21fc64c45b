"""Pieces of the Kafka latency benchmark (``tools/bench/kafka_latency.py``).

- :func:`enrich`, the benchmark's one cheap map (it runs in the engine's actors).
- A **producer** and an output-topic **probe**, each a child process
  (``python -m tideflow_tools.kafka_latency produce|probe …``) so that neither shares the
  driver's GIL: :class:`Producer` sends JSON messages ``{"id", "ts", "pad"}`` at a fixed
  rate, ``ts`` being the wall-clock time of the send; :class:`Probe` reads the output topic
  from the start and logs when each id first became readable.
- :func:`iceberg_visible`: when each row became visible in an Iceberg table (the commit
  time of the snapshot that appended it).
- :func:`step_figures`: latency percentiles of one rate step and whether the pipeline kept
  up with it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

__all__ = [
    "PAD",
    "Probe",
    "Producer",
    "create_topics",
    "enrich",
    "group_lag",
    "iceberg_visible",
    "step_figures",
]

PAD = "x" * 64
"""Filler in each message, so a message is ~100 bytes of JSON."""
TREND_SLACK_S = 1.0
"""A step is sustained only if the median latency of its last third exceeds that of its
first third by at most ``max(TREND_SLACK_S, checkpoint interval)``."""
MIN_RATE_SHARE = 0.9
"""A step counts only if the producer reached this share of the target rate."""


def _aiokafka() -> Any:
    importlib.import_module("aiokafka.admin")  # a submodule: makes ``aiokafka.admin`` usable
    return importlib.import_module("aiokafka")


def enrich(table: pa.Table) -> pa.Table:
    """The pipeline's map: keep ``id`` and ``ts`` and stamp ``seen`` (wall-clock seconds)."""
    table = table.select(["id", "ts"])
    return table.append_column("seen", pa.array([time.time()] * table.num_rows, pa.float64()))


# -- Kafka helpers (driver side) -------------------------------------------------------


def create_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> None:
    aiokafka = _aiokafka()

    async def go() -> None:
        admin = aiokafka.admin.AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            new = [aiokafka.admin.NewTopic(t, partitions, 1) for t in topics]
            await admin.create_topics(new)
        finally:
            await admin.close()

    asyncio.run(go())


def group_lag(bootstrap: str, group: str, topic: str, partitions: int) -> int | None:
    """Messages of ``topic`` not yet committed by consumer group ``group`` (None: unknown).

    Committed offsets are read by a consumer of the group (the local broker's admin API
    does not list them reliably) and end offsets are high watermarks (its ``ListOffsets``
    falls short after batches of several records).
    """
    aiokafka = _aiokafka()
    from tideflow.streaming.connectors.kafka import end_offsets

    async def go() -> int:
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [aiokafka.TopicPartition(topic, p) for p in range(partitions)]
            committed = {tp: await consumer.committed(tp) for tp in tps}
            ends = await end_offsets(consumer, tps)
            return sum(int(ends[tp]) - int(committed[tp] or 0) for tp in tps)
        finally:
            await consumer.stop()

    try:
        return asyncio.run(asyncio.wait_for(go(), 10))
    except Exception:
        return None


# -- the producer and the probe (child processes) --------------------------------------


class _Child:
    """A child process running ``python -m tideflow_tools.kafka_latency <args>``."""

    def __init__(self, args: Sequence[str], *, stdout: Any) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tideflow_tools.kafka_latency", *args],
            stdin=subprocess.PIPE,
            stdout=stdout,
            text=True,
        )

    def close(self) -> None:
        process = self._process
        if process.poll() is None:
            if process.stdin is not None:
                process.stdin.close()  # the producer ends at end of input
            if isinstance(self, Probe):
                process.terminate()  # the probe reads until stopped
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Producer(_Child):
    """Sends ``{"id", "ts", "pad"}`` JSON messages to ``topic`` at a fixed rate, step by step."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(["produce", bootstrap, topic, str(partitions)], stdout=subprocess.PIPE)

    def step(self, *, rate: float, seconds: float, first_id: int) -> dict[str, Any]:
        """Send ``rate × seconds`` messages (ids from ``first_id``), paced at ``rate``;
        blocks until all are acknowledged. Returns ``sent``, ``seconds`` (first to last
        send) and ``rate`` (achieved)."""
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        command = {"rate": rate, "seconds": seconds, "first_id": first_id}
        process.stdin.write(json.dumps(command) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the producer exited (code {process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer


class Probe(_Child):
    """Reads ``topic`` from the start; :meth:`seen` gives each id's ``(ts, readable at)``."""

    def __init__(self, bootstrap: str, topic: str, log: Path) -> None:
        self._log = log
        self._offset = 0
        self._seen: dict[int, tuple[float, float]] = {}
        log.write_text("")
        super().__init__(["probe", bootstrap, topic, str(log)], stdout=subprocess.DEVNULL)

    def seen(self) -> dict[int, tuple[float, float]]:
        """Every id read so far (the first time it was read: the sink may repeat one)."""
        with self._log.open("rb") as stream:
            stream.seek(self._offset)
            data = stream.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            ident, ts, at = line.split()
            self._seen.setdefault(int(ident), (float(ts), float(at)))
        return self._seen


async def _produce(bootstrap: str, topic: str, partitions: int) -> None:
    aiokafka = _aiokafka()
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            rate, first = float(command["rate"]), int(command["first_id"])
            total = max(1, round(rate * float(command["seconds"])))
            futures = []
            started = last = time.time()
            sent = 0
            while sent < total:
                due = min(total, int((time.time() - started) * rate) + 1)
                while sent < due:
                    ident = first + sent
                    last = time.time()
                    value = json.dumps({"id": ident, "ts": last, "pad": PAD}).encode()
                    futures.append(await producer.send(topic, value, partition=ident % partitions))
                    sent += 1
                wait = started + sent / rate - time.time()
                await asyncio.sleep(min(wait, 0.01) if wait > 0 else 0)
            await asyncio.gather(*futures)
            span = max(last - started, 1e-9)
            answer = {"sent": total, "seconds": round(span, 3), "rate": round(total / span, 1)}
            print(json.dumps(answer), flush=True)
    finally:
        await producer.stop()


async def _probe(bootstrap: str, topic: str, log: str) -> None:
    aiokafka = _aiokafka()
    consumer = aiokafka.AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        with open(log, "a", encoding="utf-8") as out:
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                at = time.time()
                lines = []
                for messages in batches.values():
                    for message in messages:
                        row = json.loads(message.value)
                        lines.append(f"{row['id']} {row['ts']} {at}\n")
                if lines:
                    out.write("".join(lines))
                    out.flush()
    finally:
        await consumer.stop()


# -- Iceberg -----------------------------------------------------------------------------


@dataclass
class IcebergWatch:
    """What :func:`iceberg_visible` read so far from one table."""

    last_snapshot: int | None = None
    seen: dict[int, tuple[float, float]] | None = None


def iceberg_rows(table: Any) -> int:
    """Rows in the table's current snapshot (0 before the first)."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records") or 0)


def iceberg_visible(table: Any, watch: IcebergWatch) -> dict[int, tuple[float, float]]:
    """Each id's ``(ts, visible at)``: the commit time of the snapshot that appended it.

    Reads only snapshots newer than the last call's (one incremental scan each)."""
    seen = watch.seen if watch.seen is not None else {}
    watch.seen = seen
    snapshots = sorted(table.snapshots(), key=lambda s: s.sequence_number or 0)
    known = [s.snapshot_id for s in snapshots]
    start = known.index(watch.last_snapshot) + 1 if watch.last_snapshot in known else 0
    previous = watch.last_snapshot
    for snapshot in snapshots[start:]:
        rows = table.incremental_append_scan(
            from_snapshot_id_exclusive=previous,
            to_snapshot_id_inclusive=snapshot.snapshot_id,
            selected_fields=("id", "ts"),
        ).to_arrow()
        at = snapshot.timestamp_ms / 1000
        for ident, ts in zip(
            rows.column("id").to_pylist(), rows.column("ts").to_pylist(), strict=True
        ):
            seen.setdefault(int(ident), (float(ts), at))
        previous = watch.last_snapshot = snapshot.snapshot_id
    return seen


# -- figures -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(seconds: float) -> float | None:
    """Milliseconds, one decimal; None for no value (JSON has no NaN)."""
    return None if math.isnan(seconds) else round(seconds * 1000, 1)


def step_figures(
    *,
    rate: float,
    produced: dict[str, Any],
    ids: Iterable[int],
    seen: dict[int, tuple[float, float]],
    interval_s: float,
    lag_at_end: int | None,
    drain_s: float,
) -> dict[str, Any]:
    """Latency percentiles of one step (ms) and whether the pipeline kept up with it.

    Kept up (``sustained``): every message became visible, the producer reached
    ``MIN_RATE_SHARE`` of ``rate``, and latency did not keep rising through the step (the
    median of the last third of the step's messages, by send time, is at most
    ``max(TREND_SLACK_S, interval_s)`` above that of the first third).
    """
    wanted = list(ids)
    found = sorted((seen[i] for i in wanted if i in seen), key=lambda p: p[0])
    latencies = [at - ts for ts, at in found]
    third = max(1, len(found) // 3)
    head = [at - ts for ts, at in found[:third]]
    tail = [at - ts for ts, at in found[-third:]]
    rise = statistics.median(tail) - statistics.median(head) if found else float("nan")
    complete = len(found) == len(wanted)
    fast_enough = float(produced["rate"]) >= MIN_RATE_SHARE * rate
    steady = found != [] and rise <= max(TREND_SLACK_S, interval_s)
    reasons = []
    if not complete:
        reasons.append(f"{len(wanted) - len(found)} of {len(wanted)} messages not visible")
    if not fast_enough:
        reasons.append(f"producer reached only {produced['rate']} msg/s")
    if found and not steady:
        reasons.append(f"latency rose by {rise:.2f} s through the step")
    return {
        "target_rate": rate,
        "produced": int(produced["sent"]),
        "produced_rate": float(produced["rate"]),
        "visible": len(found),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p90_ms": _ms(percentile(latencies, 90)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "max_ms": _ms(max(latencies) if latencies else float("nan")),
        "latency_rise_ms": _ms(rise),
        "group_lag_at_end": lag_at_end,
        "drain_s": round(drain_s, 2),
        "all_visible": complete,
        "producer_kept_rate": fast_enough,
        "latency_steady": steady,
        "sustained": complete and fast_enough and steady,
        "why_not": "; ".join(reasons) or None,
    }


# -- child process entry points ----------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kafka_latency bench: producer or probe")
    sub = parser.add_subparsers(dest="role", required=True)
    produce = sub.add_parser("produce", help="send steps read as JSON lines from stdin")
    produce.add_argument("bootstrap")
    produce.add_argument("topic")
    produce.add_argument("partitions", type=int)
    probe = sub.add_parser("probe", help="log '<id> <ts> <read at>' lines for a topic")
    probe.add_argument("bootstrap")
    probe.add_argument("topic")
    probe.add_argument("log")
    args = parser.parse_args(argv)
    try:
        if args.role == "produce":
            asyncio.run(_produce(args.bootstrap, args.topic, args.partitions))
        else:
            asyncio.run(_probe(args.bootstrap, args.topic, args.log))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
