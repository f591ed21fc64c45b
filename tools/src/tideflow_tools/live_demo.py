"""The live half of ``tideflow-demo``: every ``tideflow.core`` primitive on a real local Ray.

A seeded, bursty stream of batches goes into an elastic :class:`ActorPool` whose size a
:class:`PoolScaler` drives (actors take a second to "load their model", like a GPU stage).
Every ``checkpoint_s`` seconds an epoch begins: the source acknowledges its position, and
the sink acknowledges once every batch submitted before the barrier is done; the
:class:`EpochCoordinator` then saves both states to a :class:`CheckpointStore` and calls the
sink's commit. An :class:`AckTracker` turns out-of-order completions into the committable
offset. Half way through, one busy actor is killed with ``ray.kill``: its work is retried on
a replacement and nothing is lost.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tideflow.core.autoscaler import PoolScaler, ScalingConfig
from tideflow.core.checkpoint import AckTracker, CheckpointStore, EpochCoordinator
from tideflow.core.observability import ScaleEvent
from tideflow.core.scheduler import ActorPool, PoolFuture, ResourceRequest

__all__ = ["LiveConfig", "LiveResult", "Snapshot", "Worker", "run_live"]

_PARTITION = 0


class Worker:
    """A stand-in for a model stage: slow to start, fixed cost per batch."""

    def __init__(self, load_s: float, per_batch_s: float) -> None:
        time.sleep(load_s)  # loading weights
        self._per_batch_s = per_batch_s

    def process(self, batch_id: int, rows: list[int]) -> tuple[int, int, int]:
        time.sleep(self._per_batch_s)
        return batch_id, len(rows), sum(rows)


@dataclass(frozen=True, kw_only=True)
class LiveConfig:
    """The live job's shape; defaults take ~30 s on a 2-core machine."""

    duration_s: float = 24.0
    """How long batches keep arriving."""
    rows_per_batch: int = 100
    """Rows in one batch."""
    quiet_rate: float = 2.0
    """Batches per second outside bursts."""
    burst_rate: float = 14.0
    """Batches per second during a burst."""
    bursts: tuple[tuple[float, float], ...] = ((4.0, 12.0), (16.0, 20.0))
    """(start, end) seconds of each burst."""
    per_batch_s: float = 0.25
    """Service time of one batch on one actor."""
    load_s: float = 1.0
    """Cold start of one actor."""
    max_actors: int = 6
    """Largest pool the scaler may ask for."""
    checkpoint_s: float = 2.0
    """Seconds between checkpoint barriers."""
    kill_at_s: float | None = 10.0
    """When to kill one busy actor (None: never)."""
    seed: int = 0
    """Seed of the arrival jitter."""


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What the progress display shows, once per tick."""

    elapsed_s: float
    total: int
    submitted: int
    done: int
    pool_size: int
    ready: int
    utilization: float
    queued: int
    committable: int
    checkpoints: int


@dataclass(kw_only=True)
class LiveResult:
    """What the live job did."""

    batches: int = 0
    rows: int = 0
    row_sum: int = 0
    expected_row_sum: int = 0
    wall_s: float = 0.0
    scale_events: list[ScaleEvent] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    checkpoint_times_s: list[float] = field(default_factory=list)
    committed_rows: int = 0
    retries: int = 0
    actor_deaths: int = 0
    peak_size: int = 0
    checkpoint_dir: str = ""


def _arrivals(cfg: LiveConfig) -> list[float]:
    """Arrival times of batches: a jittery Poisson process with bursts."""
    rng = random.Random(cfg.seed)
    times, t = [], 0.0
    while t < cfg.duration_s:
        burst = any(a <= t < b for a, b in cfg.bursts)
        rate = cfg.burst_rate if burst else cfg.quiet_rate
        t += rng.expovariate(rate * rng.uniform(0.7, 1.3))
        times.append(t)
    return [x for x in times if x < cfg.duration_s]


class _Sink:
    """Collects results per epoch and commits them when the checkpoint is durable."""

    def __init__(self) -> None:
        self.pending: dict[int, list[tuple[int, int, int]]] = {}
        self.committed_rows = 0
        self.seen: set[int] = set()

    def commit(self, epoch: Any, _states: Any) -> None:
        for _batch_id, n, _total in self.pending.pop(int(epoch), []):
            self.committed_rows += n


def run_live(
    cfg: LiveConfig,
    *,
    checkpoint_dir: str | None = None,
    on_tick: Callable[[Snapshot], None] | None = None,
) -> LiveResult:
    """Run the live job on the current Ray session (``ray.init`` must have been called)."""
    job = _LiveJob(cfg, checkpoint_dir or tempfile.mkdtemp(prefix="tideflow-demo-"), on_tick)
    return job.run()


class _LiveJob:
    """The driver loop of the live job: admit, collect, barrier, commit, report."""

    def __init__(
        self, cfg: LiveConfig, directory: str, on_tick: Callable[[Snapshot], None] | None
    ) -> None:
        self.cfg = cfg
        self.on_tick = on_tick
        self.arrivals = _arrivals(cfg)
        self.result = LiveResult(checkpoint_dir=directory)
        self.coordinator = EpochCoordinator(
            store=CheckpointStore(str(Path(directory).resolve()), retain=3), timeout_s=30
        )
        for participant in ("source", "sink"):
            self.coordinator.register(participant)
        self.sink = _Sink()
        self.coordinator.on_complete(self.sink.commit)
        self.acks = AckTracker()
        self.scaler = PoolScaler(
            "process",
            ScalingConfig(min_size=1, max_size=cfg.max_actors, window_s=2.0, debounce_s=1.0),
        )
        self.inflight: dict[int, tuple[PoolFuture, int]] = {}  # batch id -> (future, epoch)
        self.barriers: list[tuple[int, int]] = []  # (epoch, batches read before its barrier)
        self.submitted = 0
        self.killed = False

    def run(self) -> LiveResult:
        pool = ActorPool(
            Worker,
            kwargs={"load_s": self.cfg.load_s, "per_batch_s": self.cfg.per_batch_s},
            size=1,
            min_size=1,
            max_size=self.cfg.max_actors,
            resources=ResourceRequest(num_cpus=0.25),
            name="process",
            scaler=self.scaler,
            sample_interval_s=0.1,
        )
        try:
            pool.wait_ready(1, timeout=120)
            start = time.monotonic()
            self._loop(pool, start)
        finally:
            stats = pool.stats
            pool.shutdown(wait=True)
        result = self.result
        result.wall_s = time.monotonic() - start
        result.scale_events = self.scaler.events
        result.retries = stats.retries
        result.actor_deaths = stats.deaths
        result.committed_rows = self.sink.committed_rows
        return result

    def _loop(self, pool: ActorPool, start: float) -> None:
        epoch = int(self.coordinator.begin_epoch())
        epoch_started = next_tick = start
        while self.submitted < len(self.arrivals) or self.inflight or self.barriers:
            now = time.monotonic()
            self._admit(pool, now - start, epoch)
            self._collect()
            more_to_read = self.submitted < len(self.arrivals)
            if more_to_read and now - epoch_started >= self.cfg.checkpoint_s:
                # The barrier: the source's state is the position of the next batch to read.
                self.coordinator.ack(epoch, "source", {"next_batch": self.submitted})
                self.barriers.append((epoch, self.submitted))
                epoch, epoch_started = int(self.coordinator.begin_epoch()), now
            self._complete_epochs()
            kill_at = self.cfg.kill_at_s
            if not self.killed and kill_at is not None and now - start >= kill_at:
                self.killed = _kill_a_busy_actor(pool)
            self.result.peak_size = max(self.result.peak_size, pool.size)
            if self.on_tick is not None and now >= next_tick:
                self.on_tick(self._snapshot(pool, now - start))
                next_tick += 0.5
            time.sleep(0.02)
        # The last epoch: everything was read and is done.
        self.coordinator.ack(epoch, "source", {"next_batch": self.submitted})
        self.coordinator.ack(epoch, "sink", {"committable": self.acks.committable(_PARTITION)})
        self.result.checkpoints.append(epoch)

    def _admit(self, pool: ActorPool, elapsed: float, epoch: int) -> None:
        rows_per_batch = self.cfg.rows_per_batch
        while self.submitted < len(self.arrivals) and self.arrivals[self.submitted] <= elapsed:
            batch_id = self.submitted
            rows = list(range(batch_id * rows_per_batch, (batch_id + 1) * rows_per_batch))
            self.result.expected_row_sum += sum(rows)
            self.acks.track(_PARTITION, batch_id)
            self.inflight[batch_id] = (pool.submit("process", batch_id, rows), epoch)
            self.submitted += 1

    def _collect(self) -> None:
        for batch_id, (future, epoch) in list(self.inflight.items()):
            if future.done():
                _, n, total = future.result()
                del self.inflight[batch_id]
                self.acks.ack(_PARTITION, batch_id)
                self.sink.pending.setdefault(epoch, []).append((batch_id, n, total))
                self.result.batches += 1
                self.result.rows += n
                self.result.row_sum += total

    def _complete_epochs(self) -> None:
        """The virtual barrier: an epoch is done once every batch read before it is done."""
        while self.barriers and not any(b < self.barriers[0][1] for b in self.inflight):
            epoch, _position = self.barriers.pop(0)
            began = time.monotonic()
            committable = self.acks.committable(_PARTITION)
            self.coordinator.ack(epoch, "sink", {"committable": committable})
            self.result.checkpoints.append(epoch)
            self.result.checkpoint_times_s.append(time.monotonic() - began)

    def _snapshot(self, pool: ActorPool, elapsed: float) -> Snapshot:
        sample = pool.utilization()
        return Snapshot(
            elapsed_s=elapsed,
            total=len(self.arrivals),
            submitted=self.submitted,
            done=self.result.batches,
            pool_size=pool.size,
            ready=sample.total - sample.starting,
            utilization=sample.utilization,
            queued=sample.queued,
            committable=self.acks.committable(_PARTITION) or 0,
            checkpoints=len(self.result.checkpoints),
        )


def _kill_a_busy_actor(pool: ActorPool) -> bool:
    """Kill the busiest actor, as a crashed node would; False if none is busy yet."""
    import ray

    loads = pool.stats.in_flight_per_actor
    handles = pool.actors
    busy = sorted((n for n in loads if loads[n] > 0 and n in handles), key=lambda n: -loads[n])
    if not busy:
        return False
    ray.kill(handles[busy[0]], no_restart=True)
    return True
