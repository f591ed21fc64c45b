"""What runs: the driver-side executor of one job.

The executor holds only references: batches are read by an I/O actor, pass through each
stage's elastic actor pool, and are written by the same I/O actor; the driver sees row counts and
``ObjectRef``\\ s. Every batch carries the epoch it was read in. A checkpoint barrier is a
point in the source (its split positions); epoch ``e`` is complete once every batch read
before its barrier has been written, and then the sink pre-commits ``e``. The
:class:`~tideflow.core.checkpoint.EpochCoordinator` saves the source positions and the
pre-commit states and only then lets the sink commit — so a rerun after any crash replays
from the last barrier and a commit is never repeated with new data.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from tideflow.core.autoscaler import PoolScaler, ScalingConfig
from tideflow.core.checkpoint import CheckpointStore, EpochCoordinator
from tideflow.core.observability import ScaleEvent, get_logger
from tideflow.core.scheduler import ActorPool, PoolFuture
from tideflow.streaming._acks import AckLedger, Origin, check_ack_mode
from tideflow.streaming._jobdir import JobDirectory
from tideflow.streaming._keyed import KeyedWorker
from tideflow.streaming._metrics import JobResult, StageMetrics
from tideflow.streaming._plan import CheckpointConfig, Plan, StageSpec
from tideflow.streaming._worker import IOWorker, StageWorker, slice_payload
from tideflow.streaming.connectors._base import JobContext, Sink, Split
from tideflow.streaming.errors import JobAbortedError

__all__ = ["Executor"]

_POLL_S = 0.002
_READ_AHEAD = 4  # reads in flight per split
_IDLE_BACKOFF_S = 0.05  # an unbounded split with no data is asked again after this
_SOURCE = "source"
_SINK = "sink"
_DEAD = "dead_letter"


@dataclass(eq=False)
class _Batch:
    epoch: int
    ref: Any
    rows: int
    priority: int = 0
    origin: Origin | None = None  # ACK mode: the read this batch's rows came from
    isolated: bool = False  # run alone on its actor (a half of a batch that crashed one)


def _enqueue(queue: deque[_Batch], batch: _Batch) -> None:
    """Append, but ahead of every queued batch of lower priority (FIFO within a priority)."""
    if not queue or queue[-1].priority >= batch.priority:
        queue.append(batch)
        return
    index = next(i for i, queued in enumerate(queue) if queued.priority < batch.priority)
    queue.insert(index, batch)


@dataclass(eq=False)
class _Stage:
    spec: StageSpec
    pool: ActorPool | None = None  # stateless stages
    actors: list[Any] = field(default_factory=list)  # keyed stages: one per partition
    queue: deque[_Batch] = field(default_factory=deque)
    # In submission order; outputs leave in that order (per-key and per-split order kept).
    in_flight: dict[Any, _Batch] = field(default_factory=dict)
    metrics: StageMetrics = field(default_factory=StageMetrics)
    snapshot_epoch: int = 0  # keyed: the last epoch whose snapshot was requested

    @property
    def participant(self) -> str:
        return f"stage:{self.spec.name}"

    @property
    def capacity(self) -> int:
        if self.pool is None:
            return 2 * len(self.actors)
        return (self.pool.size + 1) * self.spec.max_in_flight


@dataclass(eq=False)
class _KeyedCall:
    parts: list[tuple[Any, Any]]  # (meta ref, output ref) per partition


@dataclass(eq=False)
class _SplitState:
    split: Split
    state: Any = None
    finished: bool = False
    # Reads in flight, in order: (meta ref, table ref, epoch). The I/O actor runs them
    # in order, so several can be outstanding (read-ahead) without changing the result.
    reading: deque[tuple[Any, Any, int]] = field(default_factory=deque)
    idle_until: float = 0.0


class Executor:
    """Runs a :class:`Plan` once, to the end of a bounded source or until stopped."""

    def __init__(
        self,
        plan: Plan,
        *,
        job_id: str,
        checkpoint: CheckpointConfig | None,
        dead_letter: Sink | None,
        queue_limit: int | None = None,
        on_progress: Callable[[JobResult], None] | None = None,
        on_complete: Callable[[list[Any]], None] | None = None,
        id_column: str | None = None,
        complete_every: int = 10_000,
        rediscover_s: float = 5.0,
    ) -> None:
        if plan.sink is None:
            raise JobAbortedError("the pipeline has no sink: end it with .write(sink)")
        self.plan = plan
        self.sink: Sink = plan.sink
        self.jobdir = JobDirectory(job_id, checkpoint)
        self.interval_s = checkpoint.interval_s if checkpoint is not None else None
        self.epoch_cap = checkpoint.max_batches if checkpoint is not None else None
        self._epoch = 0  # the epoch being read
        self._epoch_reads = 0  # its reads that may carry rows (max_batches)
        self.ack_mode = checkpoint is not None and checkpoint.mode == "ack"
        if self.ack_mode:
            check_ack_mode(plan)
        self.dead_sink = (
            dead_letter if dead_letter is not None else self.jobdir.default_dead_letter()
        )
        self.queue_limit = queue_limit
        self.on_progress = on_progress
        self.on_complete = on_complete
        self.id_column = id_column
        self.complete_every = complete_every
        self.rediscover_s = rediscover_s
        self.store = CheckpointStore(
            self.jobdir.checkpoints_uri, retain=checkpoint.retain if checkpoint else 2
        )
        self.coordinator = EpochCoordinator(
            store=self.store,
            timeout_s=checkpoint.timeout_s if checkpoint else None,
            halt_on_commit_error=True,  # no checkpoint may skip an epoch whose commit failed
        )
        # In ACK mode sinks commit as they write: a checkpoint is the source's positions.
        for name in (_SOURCE,) if self.ack_mode else (_SOURCE, _SINK, _DEAD):
            self.coordinator.register(name)
        for spec in plan.stages:
            if spec.kind == "keyed":
                self.coordinator.register(f"stage:{spec.name}")
        self.coordinator.on_complete(self._commit)
        self.coordinator.on_abort(self._abort)
        self._pending: dict[int, int] = {}  # epoch -> batches and writes not yet done
        self._barriers: deque[int] = deque()  # epochs whose source position is recorded
        # Refs of pre-commits and snapshots -> (epoch, participant, part index, parts).
        self._acks: dict[Any, tuple[int, str, int, int]] = {}
        self._ack_parts: dict[tuple[int, str], dict[int, Any]] = {}
        self._keyed_states: dict[str, list[bytes | None]] = {}
        self._writes: dict[Any, _Batch] = {}  # write ref -> the batch it holds
        self._ledger = AckLedger(plan.source)  # ACK mode: reads in flight, acknowledged prefix
        self._done_ids: list[Any] = []  # ACK mode: ids written, for on_complete
        self._stop = False
        self._fatal: BaseException | None = None
        self._fatal_reason = ""
        self._positions_lock = threading.Lock()
        self._positions_next: dict[str, Any] | None = None
        self._positions_busy = False
        self._positions_idle = threading.Event()
        self._positions_idle.set()
        self._wake = threading.Event()
        # Last, so that nothing can fail with the lease taken: refused here (before anything
        # of the job is read) while another run of the job id is live.
        run = self.jobdir.start_run(on_lease_lost=self._lease_lost)
        self.ctx = JobContext(job_id=self.jobdir.output_id, run=run, job_uri=self.jobdir.uri)
        self.result = JobResult(job_id=job_id, run=run)
        self._log = get_logger("tideflow.streaming.executor", job_id=job_id, run=run)

    # -- life cycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the epoch in flight, take a final checkpoint and return (thread-safe)."""
        self._stop = True
        self._wake.set()

    def _on_future(self, _future: Any) -> None:
        self._wake.set()

    def _lease_lost(self, error: BaseException) -> None:
        """Another run took the job's lease (this one missed its heartbeats for a TTL)."""
        if self._fatal is None:
            self._fatal, self._fatal_reason = error, "another run took over the job's lease"
        self._wake.set()

    def run(self) -> JobResult:
        try:
            return self._run()
        finally:
            self.jobdir.end_run()  # the lease goes back however the run ends

    def _run(self) -> JobResult:
        started = time.monotonic()
        splits = self._restore()
        self._start_actors(splits)
        try:
            self._loop(splits, started)
        except BaseException:
            self._shutdown(wait=False)
            raise
        self._shutdown(wait=True)
        self.result.wall_s = time.monotonic() - started
        self.result.checkpoints = [e for e in self.coordinator.events if e.status == "completed"]
        self._log.info("job.finished", **self.result.summary())
        if self.result.only_dead_letters:  # ended "successfully" with nothing written
            self._log.warning(
                "job.all_dead_lettered",
                rows_in=self.result.rows_in,
                dead_letters=self.result.dead_letters,
                dead_letter_output=repr(self.dead_sink),
            )
        return self.result

    def _restore(self) -> dict[str, _SplitState]:
        restored = self.coordinator.restore()
        positions: dict[str, Any] = {}
        finished: set[str] = set()
        last_epoch = None
        if restored is not None:
            last_epoch = int(restored.checkpoint_id)
            source = restored.states[_SOURCE]
            positions, finished = source["positions"], set(source["finished"])
            for spec in self.plan.stages:
                if spec.kind == "keyed":
                    parts = pickle.loads(restored.states[f"stage:{spec.name}"])
                    if len(parts) != spec.partitions:
                        message = (
                            f"stage {spec.name!r} has {spec.partitions} partitions but the "
                            f"checkpoint of job {self.ctx.job_id!r} has {len(parts)}; "
                            "partitions are fixed for a job's lifetime"
                        )
                        raise JobAbortedError(message)
                    self._keyed_states[spec.name] = parts
            # The crash may have come between saving the checkpoint and committing it.
            self._commit(last_epoch, restored.states)
            self.result.restored_from = last_epoch
        # ACK mode commits every write when it is made: whatever is staged was never
        # acknowledged (its records are read again), so all of it goes.
        recover_after = None if self.ack_mode else last_epoch
        self.sink.recover(self.ctx, recover_after)
        self.dead_sink.recover(self.ctx, recover_after)
        splits = {}
        for split in self.plan.source.discover(self.ctx):
            state = positions.get(split.split_id)
            splits[split.split_id] = _SplitState(
                split=split,
                state=state,
                finished=split.split_id in finished,
            )
            self._ledger.open(split, state)
        self._log.info(
            "job.started",
            restored_from=last_epoch,
            splits=len(splits),
            finished_splits=len(finished),
        )
        return splits

    def _start_actors(self, splits: dict[str, _SplitState]) -> None:
        remote_io: Any = ray.remote(num_cpus=0)(IOWorker)
        self.io: Any = remote_io.remote(
            self.plan.source,
            self.sink,
            self.dead_sink,
            self.ctx,
            priority_column=self.plan.priority_column,
            id_column=self.id_column,
            # Above every number an earlier run of this job used (runs are counted).
            ack_seq_base=self.ctx.run * 10**9 if self.ack_mode else None,
        )
        opened = [self.io.open.remote(s.split, s.state) for s in splits.values() if not s.finished]
        self.stages: list[_Stage] = []
        remote_keyed: Any = ray.remote(KeyedWorker)
        for spec in self.plan.stages:
            if spec.kind == "keyed":
                states = self._keyed_states.get(spec.name) or [None] * spec.partitions
                actors = [
                    remote_keyed.options(**spec.resources.to_ray_options()).remote(
                        spec, spec.key, state, index=index, partitions=spec.partitions
                    )
                    for index, state in enumerate(states)
                ]
                metrics = StageMetrics(name=spec.name)
                self.stages.append(_Stage(spec=spec, actors=actors, metrics=metrics))
                continue
            scaler = None
            if spec.max_actors > spec.min_actors:
                scaler = PoolScaler(
                    spec.name, ScalingConfig(min_size=spec.min_actors, max_size=spec.max_actors)
                )
            # Two calls at once per actor when batches are pipelined: the stage's function
            # still runs one batch at a time (see StageWorker.process).
            pipelined = spec.max_in_flight > 1
            pool = ActorPool(
                StageWorker,
                args=(spec,),
                kwargs={"pipelined": pipelined},
                actor_options={"max_concurrency": 2} if pipelined else None,
                size=spec.min_actors,
                min_size=spec.min_actors,
                max_size=spec.max_actors,
                resources=spec.resources,
                max_in_flight_per_actor=spec.max_in_flight,
                max_retries=spec.max_retries,
                name=spec.name,
                scaler=scaler,
            )
            self.stages.append(_Stage(spec=spec, pool=pool, metrics=StageMetrics(name=spec.name)))
        self.result.stages = {s.spec.name: s.metrics for s in self.stages}
        ray.get(opened)
        self._wait_for_stages()

    def _wait_for_stages(self) -> None:
        """Start the flow once every stage has an actor: batches read earlier would only
        queue in front of a stage still starting, and the stages before it would stall on
        that queue (bubbles in the accelerator stage's busy time). A stage that cannot be
        placed (it asks for more than the cluster has) is reported every 10 s."""
        waited = 0.0
        for stage in self.stages:
            if stage.pool is None:
                continue
            while not stage.pool.wait_ready(1, timeout=10.0):
                waited += 10.0
                self._log.warning(
                    "stage.waiting_for_actor",
                    stage=stage.spec.name,
                    waited_s=waited,
                    needs=stage.spec.resources.to_ray_options(),
                    cluster=ray.cluster_resources(),
                    available=ray.available_resources(),
                )

    def _shutdown(self, *, wait: bool) -> None:
        if wait:  # the final positions reach the source before run() returns (bounded wait)
            self._positions_idle.wait(timeout=30.0)
        for stage in self.stages:
            if stage.pool is None:
                for actor in stage.actors:
                    ray.kill(actor)
                continue
            stage.metrics.scale_events = [e for e in stage.pool.events if isinstance(e, ScaleEvent)]
            stats = stage.pool.stats
            stage.metrics.retries, stage.metrics.actor_deaths = stats.retries, stats.deaths
            stage.pool.shutdown(wait=wait, cancel_pending=not wait, timeout=None if wait else 5)
        ray.kill(self.io)

    # -- the loop ----------------------------------------------------------------------------

    def _epoch_due(self, age_s: float) -> bool:
        """Whether the current epoch should close: its interval passed or its reads capped."""
        if self.interval_s is not None and age_s >= self.interval_s:
            return True
        return self.epoch_cap is not None and self._epoch_reads >= self.epoch_cap

    def _begin_epoch(self) -> int:
        self._epoch, self._epoch_reads = int(self.coordinator.begin_epoch()), 0
        return self._epoch

    def _loop(self, splits: dict[str, _SplitState], started: float) -> None:
        epoch = self._begin_epoch()
        for stage in self.stages:
            stage.snapshot_epoch = epoch - 1  # epochs before this run's first are done
        epoch_started = time.monotonic()
        barrier_wanted = False
        next_progress = started + 1.0
        next_discovery = started + self.rediscover_s
        while True:
            now = time.monotonic()
            reading = any(s.reading for s in splits.values())
            self.result.splits_total = len(splits)
            self.result.splits_finished = sum(1 for s in splits.values() if s.finished)
            # Unbounded sources end only when every split reached an end-of-stream marker.
            all_done = self.result.splits_finished == len(splits)
            exhausted = all_done and (self.plan.source.bounded or bool(splits))
            if not self.plan.source.bounded and now >= next_discovery:
                next_discovery = now + self.rediscover_s
                self._discover_new(splits)
            barrier_wanted = barrier_wanted or self._epoch_due(now - epoch_started)
            if self.ack_mode:
                # No barriers to align: a checkpoint is the acknowledged prefix, taken as is.
                if (exhausted or self._stop) and not reading and not self._ledger.outstanding:
                    self._ack_barrier(epoch, splits)
                    self.result.stopped = not exhausted
                    break
                if barrier_wanted:
                    self._ack_barrier(epoch, splits)
                    epoch, epoch_started, barrier_wanted = self._begin_epoch(), now, False
            elif (barrier_wanted or exhausted or self._stop) and not reading:
                # The barrier: every read of this epoch has returned; record the positions.
                self._barrier(epoch, splits)
                if exhausted or self._stop:
                    self.result.stopped = not exhausted
                    break
                epoch, epoch_started, barrier_wanted = self._begin_epoch(), now, False
            if not barrier_wanted and not self._stop:
                self._read(splits, epoch, now)
            self._collect_reads(splits, now)
            self._advance_stages()
            self._note_held(splits)
            self._collect_writes()
            self._complete_epochs()
            self._raise_fatal()
            self.coordinator.check_timeouts()
            if self.on_progress is not None and now >= next_progress:
                next_progress = now + 1.0
                self.on_progress(self.result)
            self._wait(splits)
        while self._barriers or self._acks:
            self._advance_stages()
            self._collect_writes()
            self._complete_epochs()
            self._raise_fatal()
            self._wait(splits)

    def _note_held(self, splits: dict[str, _SplitState]) -> None:
        held = sum(len(s.reading) for s in splits.values()) + len(self._writes)
        held += sum(len(stage.queue) + len(stage.in_flight) for stage in self.stages)
        self.result.peak_batches_held = max(self.result.peak_batches_held, held)

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            message = (
                f"job {self.ctx.job_id!r} stopped: {self._fatal_reason}; run it again with the "
                "same job_id to resume from its last complete checkpoint"
            )
            raise JobAbortedError(message) from self._fatal

    def _discover_new(self, splits: dict[str, _SplitState]) -> None:
        """Unbounded sources grow: open splits that appeared since the last look."""
        try:
            found = self.plan.source.discover(self.ctx)
        except Exception as error:  # a stalled broker or store: look again next round
            self._log.warning("source.discover_failed", error=str(error)[:300])
            return
        new = [s for s in found if s.split_id not in splits]
        if new:
            ray.get([self.io.open.remote(split, None) for split in new])
            for split in new:
                splits[split.split_id] = _SplitState(split=split)
                self._ledger.open(split, None)
            self._log.info("source.new_splits", count=len(new))

    def _limit(self, stage: _Stage | None) -> int:
        if self.queue_limit is not None:
            return self.queue_limit
        if stage is None:
            return 8
        return max(4, 2 * stage.spec.max_actors * stage.spec.max_in_flight)

    def _read(self, splits: dict[str, _SplitState], epoch: int, now: float) -> None:
        first = self.stages[0] if self.stages else None
        queued = len(first.queue) if first else len(self._writes)
        in_reads = sum(len(s.reading) for s in splits.values())
        limit = self._limit(first)
        if queued + in_reads >= limit:
            reason = f"queue of {first.spec.name!r} full" if first is not None else "sink busy"
            self.result.source.note_backpressure(now, reason)
            return
        for s in splits.values():
            while (
                not s.finished
                and len(s.reading) < _READ_AHEAD
                and s.idle_until <= now
                and queued + in_reads < limit
                and (self.epoch_cap is None or self._epoch_reads < self.epoch_cap)
            ):
                meta_ref, table_ref = self.io.read.options(num_returns=2).remote(
                    s.split.split_id, self.plan.read_batch_size, epoch
                )
                s.reading.append((meta_ref, table_ref, epoch))
                in_reads += 1
                self._epoch_reads += 1

    def _collect_reads(self, splits: dict[str, _SplitState], now: float) -> None:
        heads = {s.reading[0][0]: s for s in splits.values() if s.reading}
        while heads:
            ready, _ = ray.wait(list(heads), num_returns=len(heads), timeout=0)
            if not ready:
                return
            metas = ray.get(ready)
            next_heads = {}
            for ref, meta in zip(ready, metas, strict=True):
                s = heads[ref]
                _, table_ref, epoch = s.reading.popleft()
                s.state, s.finished = meta["state"], meta["finished"]
                if s.reading:
                    next_heads[s.reading[0][0]] = s
                self.result.dead_letters += meta.get("dead", 0)
                origin = self._ledger.track(s.split.split_id, meta.get("offsets"))
                if meta["rows"] == 0:
                    if epoch == self._epoch and self._epoch_reads > 0:
                        self._epoch_reads -= 1  # an empty poll does not fill the epoch
                    if origin is not None:  # only undecodable records: dead-lettered already
                        self._ledger.ack(origin)
                    if not s.finished:
                        s.idle_until = now + _IDLE_BACKOFF_S
                    continue
                self.result.rows_in += meta["rows"]
                batch = _Batch(
                    epoch=epoch,
                    ref=table_ref,
                    rows=meta["rows"],
                    priority=meta.get("priority", 0),
                    origin=origin,
                )
                self._hold(batch)
                if self.stages:
                    _enqueue(self.stages[0].queue, batch)
                else:
                    self._write(batch)
            heads = next_heads

    def _wait(self, splits: dict[str, _SplitState]) -> None:
        """Sleep until something may have changed: a Ray result, a pool future, or 2 ms."""
        if self._wake.is_set():
            self._wake.clear()
            return
        refs = [s.reading[0][0] for s in splits.values() if s.reading]
        refs += list(self._writes) + list(self._acks)
        for stage in self.stages:
            if stage.pool is None and stage.in_flight:
                refs += [meta for meta, _ in next(iter(stage.in_flight)).parts]
        if refs:
            ray.wait(refs, num_returns=1, timeout=_POLL_S)
        else:
            self._wake.wait(_POLL_S)
        self._wake.clear()

    def _advance_stages(self) -> None:
        now = time.monotonic()
        for i, stage in enumerate(self.stages):
            for handle, batch in list(stage.in_flight.items()):
                if not self._is_done(stage, handle):
                    break  # outputs leave in input order
                del stage.in_flight[handle]
                if stage.pool is None:
                    self._keyed_done(i, stage, batch, handle)
                elif not self._stage_done(i, stage, batch, handle):
                    break  # the batch was split: its halves now head the line
            downstream = self.stages[i + 1] if i + 1 < len(self.stages) else None
            while stage.queue and len(stage.in_flight) < stage.capacity:
                waiting = len(downstream.queue) if downstream else len(self._writes)
                if waiting + len(stage.in_flight) >= self._limit(downstream):
                    reason = (
                        f"queue of {downstream.spec.name!r} full" if downstream else "sink busy"
                    )
                    stage.metrics.note_backpressure(now, reason)
                    break
                batch = stage.queue.popleft()
                if stage.pool is None:
                    stage.in_flight[self._keyed_submit(stage, batch)] = batch
                else:
                    future = stage.pool.submit("process", batch.ref, priority=batch.priority)
                    future.add_done_callback(self._on_future)
                    stage.in_flight[future] = batch
            stage.metrics.queue_depth = len(stage.queue)

    @staticmethod
    def _is_done(stage: _Stage, handle: Any) -> bool:
        if stage.pool is not None:
            return bool(handle.done())
        metas = [meta for meta, _ in handle.parts]
        ready, _ = ray.wait(metas, num_returns=len(metas), timeout=0)
        return len(ready) == len(metas)

    def _stage_done(self, i: int, stage: _Stage, batch: _Batch, future: PoolFuture) -> bool:
        """Forward a finished batch; False when it failed and was split for a retry."""
        error = future.exception()
        if error is not None and not batch.isolated and stage.spec.max_retries == 0:
            # A crash may have been another call's doing (calls share an actor): try the
            # batch again alone before blaming its rows. (With retries, the pool's own
            # retries after a death already ran alone.)
            assert stage.pool is not None
            retry = stage.pool.submit("process", batch.ref, priority=batch.priority, isolated=True)
            retry.add_done_callback(self._on_future)
            batch.isolated = True
            stage.in_flight = {retry: batch, **stage.in_flight}
            return False
        if error is not None and batch.rows > 1:
            # The actor kept dying on this batch: retry its halves (first, to keep the
            # order) until the rows that kill it are alone.
            self._log.warning(
                "stage.batch_split", stage=stage.spec.name, rows=batch.rows, error=str(error)[:300]
            )
            half = batch.rows // 2
            task: Any = slice_payload
            halves = [
                _Batch(
                    epoch=batch.epoch,
                    ref=task.remote(batch.ref, start, length),
                    rows=length,
                    priority=batch.priority,
                    origin=batch.origin,
                    isolated=True,
                )
                for start, length in ((0, half), (half, batch.rows - half))
            ]
            self._hold(batch)  # two halves replace one batch
            assert stage.pool is not None
            retries = {}
            for half_batch in halves:
                retry = stage.pool.submit(
                    "process", half_batch.ref, priority=batch.priority, isolated=True
                )
                retry.add_done_callback(self._on_future)
                retries[retry] = half_batch
            stage.in_flight = {**retries, **stage.in_flight}  # ahead of later batches
            return False
        if error is not None:
            # A single row whose actor keeps dying: it goes to the dead-letter output.
            self._log.warning("stage.batch_failed", stage=stage.spec.name, error=str(error)[:300])
            ref = self.io.write_failed.remote(
                batch.epoch, batch.ref, stage.spec.name, f"{type(error).__name__}: {error}"
            )
            self._writes[ref] = batch  # the batch's hold passes to its write
            stage.metrics.dead_letters += batch.rows
            self.result.dead_letters += batch.rows
            return True
        self._forward(i, stage, batch, [(future.meta, future.object_ref)])
        return True

    def _keyed_submit(self, stage: _Stage, batch: _Batch) -> _KeyedCall:
        # The aligned barrier: snapshots of earlier epochs go before this epoch's rows.
        self._keyed_snapshots(stage, batch.epoch - 1)
        return _KeyedCall(
            parts=[
                tuple(actor.process.options(num_returns=2).remote(batch.ref))
                for actor in stage.actors
            ]
        )

    def _keyed_done(self, i: int, stage: _Stage, batch: _Batch, call: _KeyedCall) -> None:
        # A failing keyed actor fails the job: its state is only as good as the checkpoint.
        metas = ray.get([meta for meta, _ in call.parts])
        outputs = list(zip(metas, [ref for _, ref in call.parts], strict=True))
        self._forward(i, stage, batch, outputs)

    def _keyed_snapshots(self, stage: _Stage, upto: int) -> None:
        while stage.snapshot_epoch < upto:
            stage.snapshot_epoch += 1
            for index, actor in enumerate(stage.actors):
                ref = actor.snapshot.remote()
                self._acks[ref] = (
                    stage.snapshot_epoch,
                    stage.participant,
                    index,
                    len(stage.actors),
                )

    def _forward(
        self, i: int, stage: _Stage, batch: _Batch, outputs: list[tuple[dict[str, Any], Any]]
    ) -> None:
        """Send a finished batch's outputs downstream (and dead letters to their sink)."""
        epoch, priority, origin = batch.epoch, batch.priority, batch.origin
        for meta, ref in outputs:
            stage.metrics.observe(meta)
            if meta["dead"]:
                self.result.dead_letters += meta["dead"]
                dead = _Batch(epoch=epoch, ref=ref, rows=meta["dead"], origin=origin)
                self._hold(dead)
                self._writes[self.io.write_dead.remote(epoch, ref)] = dead
            if meta["rows_out"] == 0:
                continue
            out = _Batch(
                epoch=epoch, ref=ref, rows=meta["rows_out"], priority=priority, origin=origin
            )
            self._hold(out)
            if i + 1 < len(self.stages):
                _enqueue(self.stages[i + 1].queue, out)
            else:
                self._write(out)
        self._release(batch)  # after its outputs hold the epoch and the origin

    def _write(self, batch: _Batch) -> None:
        self._writes[self.io.write.remote(batch.epoch, batch.ref)] = batch
        self.result.rows_out += batch.rows

    def _collect_writes(self) -> None:
        refs = list(self._writes)
        if refs:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            written = ray.get(ready)  # a sink that cannot write stops the job
            for ref, ids in zip(ready, written, strict=True):
                if ids:
                    self._done_ids.extend(ids)
                self._release(self._writes.pop(ref))
            if len(self._done_ids) >= self.complete_every:
                self._flush_done_ids()
        refs = list(self._acks)
        if refs:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                epoch, participant, index, count = self._acks.pop(ref)
                parts = self._ack_parts.setdefault((epoch, participant), {})
                parts[index] = ray.get(ref)
                if len(parts) == count:
                    del self._ack_parts[(epoch, participant)]
                    values = [parts[k] for k in range(count)]
                    state: Any = (
                        pickle.dumps(values)
                        if participant.startswith("stage:")
                        else {"precommits": values}
                    )
                    self.coordinator.ack(epoch, participant, state)

    def _barrier(self, epoch: int, splits: dict[str, _SplitState]) -> None:
        state = {
            "positions": {k: s.state for k, s in splits.items() if s.state is not None},
            "finished": sorted(k for k, s in splits.items() if s.finished),
        }
        self.coordinator.ack(epoch, _SOURCE, state)
        self._pending.setdefault(epoch, 0)
        self._barriers.append(epoch)

    # -- holds: what keeps an epoch (and, in ACK mode, a read) from completing -------------

    def _hold(self, batch: _Batch) -> None:
        self._pending[batch.epoch] = self._pending.get(batch.epoch, 0) + 1
        if batch.origin is not None:
            batch.origin.pending += 1

    def _release(self, batch: _Batch) -> None:
        self._pending[batch.epoch] -= 1
        if self.ack_mode and self._pending[batch.epoch] == 0:
            del self._pending[batch.epoch]  # no barriers wait on epochs in ACK mode
        origin = batch.origin
        if origin is not None:
            origin.pending -= 1
            if origin.pending == 0:
                self._ledger.ack(origin)

    # -- record-level ACK mode -----------------------------------------------------------------

    def _ack_barrier(self, epoch: int, splits: dict[str, _SplitState]) -> None:
        """ACK mode: checkpoint each split's acknowledged prefix (not the reader's place)."""
        self._flush_done_ids()  # before the positions that make them final: at least once
        read = [key for key, s in splits.items() if s.finished and not s.reading]
        self.coordinator.ack(epoch, _SOURCE, self._ledger.checkpoint(read))

    def _flush_done_ids(self) -> None:
        ids, self._done_ids = self._done_ids, []
        if self.on_complete is not None:
            for start in range(0, len(ids), self.complete_every):
                self.on_complete(ids[start : start + self.complete_every])

    def _complete_epochs(self) -> None:
        """Epochs whose batches were all written pre-commit, in order."""
        while self._barriers and self._pending.get(self._barriers[0], 0) == 0:
            epoch = self._barriers.popleft()
            del self._pending[epoch]
            for stage in self.stages:
                if stage.pool is None:
                    self._keyed_snapshots(stage, epoch)
            self._acks[self.io.precommit.remote(epoch)] = (epoch, _SINK, 0, 1)
            self._acks[self.io.precommit_dead.remote(epoch)] = (epoch, _DEAD, 0, 1)

    def _abort(self, epoch: Any, reason: str) -> None:
        """A checkpoint failed (timeout, or its state could not be saved): its epoch's output
        would be skipped by the next one, so the job stops; a rerun resumes from the last
        complete checkpoint and replays the epoch. Staged output of the epoch is dropped."""
        for sink in (self.sink, self.dead_sink):
            try:
                sink.abort(self.ctx, int(epoch), [])
            except Exception as error:  # recover() removes it on the rerun anyway
                self._log.warning("sink.abort_failed", epoch=int(epoch), error=str(error)[:300])
        if self._fatal is None:
            self._fatal = JobAbortedError(f"checkpoint {int(epoch)} failed: {reason}")
            self._fatal_reason = f"checkpoint {int(epoch)} failed"

    def _commit(self, epoch: Any, states: Any) -> None:
        try:
            self._commit_epoch(int(epoch), states)
        except Exception as error:
            # Later epochs must not be committed past this one: stop the job; a rerun
            # re-commits from the checkpoint (commits are idempotent).
            if self._fatal is None:
                self._fatal, self._fatal_reason = error, f"committing epoch {epoch} failed"
            raise

    def _commit_epoch(self, epoch: int, states: Any) -> None:
        if self._fatal is not None:
            raise JobAbortedError(f"epoch {epoch} not committed: an earlier commit failed")
        if self.ack_mode:
            self.result.committed_epochs.append(epoch)
            self._commit_positions(states[_SOURCE]["positions"])
            return
        sink = states[_SINK]["precommits"]
        self.sink.commit(self.ctx, epoch, [p["state"] for p in sink])
        self.dead_sink.commit(self.ctx, epoch, [p["state"] for p in states[_DEAD]["precommits"]])
        self.result.committed_epochs.append(epoch)
        self.result.checkpoints = [e for e in self.coordinator.events if e.status == "completed"]
        if self.on_complete is not None:
            # After the commit, so a crash in between calls again on restore: at least once.
            ids = [i for p in sink for i in p["ids"]]
            for start in range(0, len(ids), self.complete_every):
                self.on_complete(ids[start : start + self.complete_every])
        self._commit_positions(states[_SOURCE]["positions"])

    def _commit_positions(self, positions: dict[str, Any]) -> None:
        """Tell the source what is durable (Kafka: the consumer group's offsets), on a
        thread of its own: a stalled broker must not stall the job. Only the newest
        positions matter, so a call still running makes the next ones wait and merge."""
        with self._positions_lock:
            self._positions_next = positions
            self._positions_idle.clear()
            if self._positions_busy:
                return
            self._positions_busy = True
        threading.Thread(target=self._positions_loop, name="commit-positions", daemon=True).start()

    def _positions_loop(self) -> None:
        while True:
            with self._positions_lock:
                positions, self._positions_next = self._positions_next, None
                if positions is None:
                    self._positions_busy = False
                    self._positions_idle.set()
                    return
            try:
                self.plan.source.commit_positions(self.ctx, positions)
            except Exception as error:  # best effort: the checkpoint is what a rerun uses
                self._log.warning("source.commit_positions_failed", error=str(error)[:300])
