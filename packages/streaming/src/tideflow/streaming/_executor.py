"""What runs: the driver-side executor of one job.

The executor holds only references: batches are read by an I/O actor, pass through each
stage's physical operator (see :mod:`tideflow.streaming._planner`), and are written by the
same I/O actor; the driver sees row counts and ``ObjectRef``\\ s. Every batch carries the
epoch it was read in. A checkpoint barrier is a point in the source (its split positions);
epoch ``e`` is complete once every batch read before its barrier has been written, and
then the sink pre-commits ``e``. The :class:`~tideflow.core.checkpoint.EpochCoordinator`
saves the source positions and the pre-commit states and only then lets the sink commit —
so a rerun after any crash replays from the last barrier and a commit is never repeated
with new data.

The loop's decisions are plain functions (:mod:`._execution.steps`) over its state
(:class:`._execution.state.LoopState`); how much may be sent where is a
:class:`._execution.backpressure.BackpressurePolicy`; epoch vs record-level ACK commits are
a :class:`._execution.commit_modes.CommitMode` chosen once. Checkpoint acknowledgements —
and so the saves, sink commits, completion callbacks and position commits they complete —
run on one committer thread, in order, so that a slow commit never stalls reading.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import ray

from tideflow.core.checkpoint import CheckpointStore, EpochCoordinator
from tideflow.core.observability import get_logger
from tideflow.streaming._acks import AckLedger, check_ack_mode
from tideflow.streaming._execution import lifecycle, steps
from tideflow.streaming._execution.backpressure import BackpressurePolicy, QueueLimits
from tideflow.streaming._execution.commit_modes import (
    DEAD,
    SINK,
    SOURCE,
    BarrierStep,
    CommitContext,
    commit_mode,
)
from tideflow.streaming._execution.committer import Committer, Completions, PositionCommitter
from tideflow.streaming._execution.state import Batch, LoopState, SplitState
from tideflow.streaming._jobdir import JobDirectory
from tideflow.streaming._metrics import JobResult
from tideflow.streaming._operators.base import Finished, OperatorHooks, PhysicalOperator
from tideflow.streaming._operators.write import SinkWriters
from tideflow.streaming._plan import CheckpointConfig, Plan
from tideflow.streaming._planner import PlanContext, plan_operator, restore_states, stateful_stages
from tideflow.streaming._worker import IOWorker
from tideflow.streaming.connectors._base import JobContext, Sink
from tideflow.streaming.errors import JobAbortedError

__all__ = ["Executor"]

_POLL_S = 0.002
_TIMEOUT_CHECK_S = 0.1  # how often checkpoint timeouts are checked


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
        on_dead_letter: Callable[[list[dict[str, Any]]], None] | None = None,
        rediscover_s: float = 5.0,
        backpressure: BackpressurePolicy | None = None,
    ) -> None:
        if plan.sink is None:
            raise JobAbortedError("the pipeline has no sink: end it with .write(sink)")
        self.plan = plan
        self.sink: Sink = plan.sink
        self.jobdir = JobDirectory(job_id, checkpoint)
        self.interval_s = checkpoint.interval_s if checkpoint is not None else None
        self.epoch_cap = checkpoint.max_batches if checkpoint is not None else None
        mode = checkpoint.mode if checkpoint is not None else "epoch"
        if mode == "ack":
            check_ack_mode(plan)
        self.dead_sink = (
            dead_letter if dead_letter is not None else self.jobdir.default_dead_letter()
        )
        self.backpressure = backpressure if backpressure is not None else QueueLimits(queue_limit)
        self.on_progress = on_progress
        self.id_column = id_column
        self.rediscover_s = rediscover_s
        self.store = CheckpointStore(
            self.jobdir.checkpoints_uri, retain=checkpoint.retain if checkpoint else 2
        )
        self.coordinator = EpochCoordinator(
            store=self.store,
            timeout_s=checkpoint.timeout_s if checkpoint else None,
            halt_on_commit_error=True,  # no checkpoint may skip an epoch whose commit failed
        )
        self.state = LoopState()
        self._ledger = AckLedger(plan.source)  # reads in flight, acknowledged prefix
        self._completions = Completions(on_complete, complete_every)
        self._dead_letters = (
            Completions(on_dead_letter, complete_every) if on_dead_letter is not None else None
        )
        self.mode = commit_mode(
            mode,
            CommitContext(
                coordinator=self.coordinator,
                ack=self._ack,
                sink=self.sink,
                dead_sink=self.dead_sink,
                job=lambda: self.ctx,
                result=lambda: self.result,
                ledger=self._ledger,
                completions=self._completions,
                commit_positions=self._commit_positions,
                dead_letters=self._dead_letters,
            ),
        )
        # In ACK mode sinks commit as they write: a checkpoint is the source's positions.
        for name in (*self.mode.participants, *stateful_stages(plan)):
            self.coordinator.register(name)
        self.coordinator.on_complete(self._commit)
        self.coordinator.on_abort(self._abort)
        self.operators: list[PhysicalOperator] = []
        # Refs of pre-commits and snapshots -> (epoch, participant, part index, parts).
        self._acks: dict[Any, tuple[int, str, int, int]] = {}
        self._ack_parts: dict[tuple[int, str], dict[int, Any]] = {}
        self._stage_states: dict[str, Any] = {}  # restored state of stateful stages
        self._writes: dict[Any, Batch] = {}  # write ref -> the batch it holds
        self._dead_writes: set[Any] = set()  # those of them that write dead letters
        self._stop = False
        self._fatal: BaseException | None = None
        self._fatal_reason = ""
        self._committer: Committer | None = None  # started with the loop
        self._committer_error: BaseException | None = None
        self._next_timeout_check = 0.0
        self._wake = threading.Event()
        # Last, so that nothing can fail with the lease taken: refused here (before anything
        # of the job is read) while another run of the job id is live.
        run = self.jobdir.start_run(on_lease_lost=self._lease_lost)
        self.ctx = JobContext(job_id=self.jobdir.output_id, run=run, job_uri=self.jobdir.uri)
        self.result = JobResult(job_id=job_id, run=run)
        self._log = get_logger("tideflow.streaming.executor", job_id=job_id, run=run)
        self._positions = PositionCommitter(
            lambda positions: self.plan.source.commit_positions(self.ctx, positions), self._log
        )

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
        self._restore()
        self._start_actors()
        try:
            self._committer = Committer(on_error=self._checkpointing_failed)
            self._loop(started)
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

    def _restore(self) -> None:
        restored = self.coordinator.restore()
        positions: dict[str, Any] = {}
        finished: set[str] = set()
        last_epoch = None
        if restored is not None:
            last_epoch = int(restored.checkpoint_id)
            source = restored.states[SOURCE]
            positions, finished = source["positions"], set(source["finished"])
            self._stage_states = restore_states(self.plan, restored.states, self.ctx.job_id)
            # The crash may have come between saving the checkpoint and committing it.
            self._commit(last_epoch, restored.states)
            self.result.restored_from = last_epoch
        recover_after = self.mode.recover_after(last_epoch)
        self.sink.recover(self.ctx, recover_after)
        self.dead_sink.recover(self.ctx, recover_after)
        splits = self.state.splits
        for split in self.plan.source.discover(self.ctx):
            state = positions.get(split.split_id)
            splits[split.split_id] = SplitState(
                split=split, state=state, finished=split.split_id in finished
            )
            self._ledger.open(split, state)
        self._log.info(
            "job.started",
            restored_from=last_epoch,
            splits=len(splits),
            finished_splits=len(finished),
        )

    def _start_actors(self) -> None:
        remote_io: Any = ray.remote(num_cpus=0)(IOWorker)
        self.io: Any = remote_io.remote(
            self.plan.source,
            self.sink,
            self.dead_sink,
            self.ctx,
            priority_column=self.plan.priority_column,
            id_column=self.id_column,
            ack_seq_base=self.mode.ack_seq_base(self.ctx.run),
            track_dead_letters=self._dead_letters is not None,
        )
        extra = lifecycle.start_writers(self.sink, self.ctx, self.plan.sink_writers, self.id_column)
        self.writers = SinkWriters([self.io, *extra])
        splits = self.state.splits.values()
        opened = [self.io.open.remote(s.split, s.state) for s in splits if not s.finished]
        hooks = OperatorHooks(
            hold=self._hold,
            release=self._release,
            wake=self._on_future,
            snapshot=self._track_snapshot,
            log=self._log,
        )
        context = PlanContext(hooks=hooks, states=self._stage_states)
        self.operators = [plan_operator(spec, context) for spec in self.plan.stages]
        self.result.stages = {op.name: op.metrics for op in self.operators}
        # Re-batching stages keep the rest of an epoch until nothing upstream holds rows of it.
        self._track_upstream = any(spec.batch_size is not None for spec in self.plan.stages)
        ray.get(opened)
        lifecycle.wait_for_stages(self.operators, self._log)

    def _shutdown(self, *, wait: bool) -> None:
        if self._committer is not None:  # on an error: the commit running now ends first
            self._committer.shutdown(wait=wait, timeout=None if wait else 30.0)
        if wait:  # the final positions reach the source before run() returns (bounded wait)
            self._positions.wait_idle(timeout=30.0)
        for op in self.operators:
            op.shutdown(wait=wait)
        for writer in self.writers.writers:
            ray.kill(writer)
        connectors = {"source": self.plan.source, "sink": self.sink, "dead_letter": self.dead_sink}
        lifecycle.close_connectors(connectors, self._log)

    # -- the loop ----------------------------------------------------------------------------

    def _begin_epoch(self) -> int:
        self.state.epoch, self.state.epoch_reads = int(self.coordinator.begin_epoch()), 0
        return self.state.epoch

    def _loop(self, started: float) -> None:
        state, splits = self.state, self.state.splits
        first_epoch = self._begin_epoch()
        for op in self.operators:
            op.start(first_epoch)  # epochs before this run's first are done
        epoch_started = time.monotonic()
        barrier_wanted = False
        next_progress = started + 1.0
        next_discovery = started + self.rediscover_s
        while True:
            now = time.monotonic()
            reading = state.reading
            self.result.splits_total = len(splits)
            self.result.splits_finished = sum(1 for s in splits.values() if s.finished)
            # Unbounded sources end only when every split reached an end-of-stream marker.
            all_done = self.result.splits_finished == len(splits)
            exhausted = all_done and (self.plan.source.bounded or bool(splits))
            if not self.plan.source.bounded and now >= next_discovery:
                next_discovery = now + self.rediscover_s
                self._discover_new()
            barrier_wanted = barrier_wanted or steps.epoch_due(
                age_s=now - epoch_started,
                interval_s=self.interval_s,
                epoch_reads=state.epoch_reads,
                epoch_cap=self.epoch_cap,
                uncommitted=len(self.coordinator.pending) - 1,  # less the one being read
            )
            step = self.mode.barrier_step(
                wanted=barrier_wanted,
                ending=exhausted or self._stop,
                reading=reading,
                unacknowledged=self._ledger.outstanding,
            )
            if step is not BarrierStep.NONE:
                self.mode.barrier(state, state.epoch)
                if step is BarrierStep.LAST:
                    self.result.stopped = not exhausted
                    break
                self._begin_epoch()
                epoch_started, barrier_wanted = now, False
            if not barrier_wanted and not self._stop:
                self._read(now)
            self._collect_reads(now)
            self._advance_stages()
            self._note_held()
            self._collect_writes()
            self._complete_epochs()
            self._raise_fatal()
            self._check_timeouts()
            if self.on_progress is not None and now >= next_progress:
                next_progress = now + 1.0
                self.on_progress(self.result)
            self._wait()
        input_ended = not self.result.stopped  # keyed stages flush what they keep (on_end)
        while state.barriers or self._acks:
            self._advance_stages(input_ended=input_ended)
            self._collect_writes()
            self._complete_epochs()
            self._raise_fatal()
            self._wait()
        assert self._committer is not None
        self._committer.wait_idle()  # the last epochs' commits
        self._raise_fatal()

    def _note_held(self) -> None:
        held = self.state.reads_in_flight + len(self._writes)
        held += sum(op.held for op in self.operators)
        self.result.peak_batches_held = max(self.result.peak_batches_held, held)

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            message = (
                f"job {self.ctx.job_id!r} stopped: {self._fatal_reason}; run it again with the "
                "same job_id to resume from its last complete checkpoint"
            )
            raise JobAbortedError(message) from self._fatal
        if self._committer_error is not None:
            raise self._committer_error  # as it was raised in the committer

    def _discover_new(self) -> None:
        """Unbounded sources grow: open splits that appeared since the last look."""
        splits = self.state.splits
        new = lifecycle.discover_new_splits(self.plan.source, self.ctx, splits, self._log)
        if new:
            ray.get([self.io.open.remote(split, None) for split in new])
            for split in new:
                splits[split.split_id] = SplitState(split=split)
                self._ledger.open(split, None)
            self._log.info("source.new_splits", count=len(new))

    def _read(self, now: float) -> None:
        state = self.state
        first = self.operators[0] if self.operators else None
        downstream = first.spec if first is not None else None
        waiting = first.waiting if first is not None else len(self._writes)
        budget = self.backpressure.budget(downstream, waiting=waiting, sent=state.reads_in_flight)
        if budget <= 0:
            self.result.source.note_backpressure(now, self.backpressure.reason(downstream))
            return
        planned = steps.plan_reads(
            state.splits.values(),
            budget=budget,
            now=now,
            epoch_reads=state.epoch_reads,
            epoch_cap=self.epoch_cap,
        )
        for s in planned:
            meta_ref, table_ref = self.io.read.options(num_returns=2).remote(
                s.split.split_id, self.plan.read_batch_size, state.epoch
            )
            s.reading.append((meta_ref, table_ref, state.epoch))
            state.epoch_reads += 1

    def _collect_reads(self, now: float) -> None:
        heads = {s.reading[0][0]: s for s in self.state.splits.values() if s.reading}
        while heads:
            ready, _ = ray.wait(list(heads), num_returns=len(heads), timeout=0)
            if not ready:
                return
            metas = ray.get(ready)
            seen = time.monotonic()  # after the reads ended: where their next_awake counts from
            next_heads = {}
            for ref, meta in zip(ready, metas, strict=True):
                s = heads[ref]
                _, table_ref, epoch = s.reading.popleft()
                s.state, s.finished = meta["state"], meta["finished"]
                if s.reading:
                    next_heads[s.reading[0][0]] = s
                self.result.dead_letters += meta.get("dead", 0)
                if meta.get("dead_rows") and self._dead_letters is not None:
                    self._dead_letters.notify(meta["dead_rows"])  # ACK mode: committed
                origin = self._ledger.track(s.split.split_id, meta.get("offsets"))
                next_awake_s = meta.get("next_awake_s")  # the reader's wish, as a delay
                if meta["rows"] == 0:
                    if origin is not None:  # only undecodable records: dead-lettered already
                        self._ledger.ack(origin)
                    steps.note_empty_read(self.state, s, epoch, seen, next_awake_s)
                    continue
                steps.note_next_awake(s, seen, next_awake_s)
                self.result.rows_in += meta["rows"]
                batch = Batch(
                    epoch=epoch,
                    ref=table_ref,
                    rows=meta["rows"],
                    priority=meta.get("priority", 0),
                    origin=origin,
                )
                self._hold(batch)
                if self.operators:
                    self.operators[0].add_input(batch)
                else:
                    self._write(batch)
            heads = next_heads

    def _wait(self) -> None:
        """Sleep until something may have changed: a Ray result, a pool future, or 2 ms."""
        if self._wake.is_set():
            self._wake.clear()
            return
        refs = [s.reading[0][0] for s in self.state.splits.values() if s.reading]
        refs += list(self._writes) + list(self._acks)
        for op in self.operators:
            refs += op.wait_refs()
        if refs:
            ray.wait(refs, num_returns=1, timeout=_POLL_S)
        else:
            self._wake.wait(_POLL_S)
        self._wake.clear()

    def _advance_stages(self, *, input_ended: bool = False) -> None:
        """Take what is ready, dispatch, and tick each stage. ``input_ended``: the source
        ended (not a stop), so a stage with nothing left upstream may flush (``on_end``)."""
        now, wall = time.monotonic(), time.time()
        upstream = 0  # batches the stages before this one hold
        # Epochs whose rows are still upstream of each stage (see note_upstream).
        busy = steps.epochs_being_read(self.state) if self._track_upstream else set()
        for i, op in enumerate(self.operators):
            if self._track_upstream:
                op.note_upstream(busy)
                busy |= op.held_epochs()
            for finished in op.take_ready():
                self._forward(i, op, finished)
            downstream = self.operators[i + 1] if i + 1 < len(self.operators) else None
            spec = downstream.spec if downstream is not None else None
            while op.can_dispatch():
                waiting = downstream.waiting if downstream is not None else len(self._writes)
                if self.backpressure.budget(spec, waiting=waiting, sent=op.in_flight) <= 0:
                    op.metrics.note_backpressure(now, self.backpressure.reason(spec))
                    break
                op.dispatch()
            op.on_tick(wall, self.state.epoch, input_done=input_ended and upstream == 0)
            upstream += op.held
            op.metrics.queue_depth = len(op.queue)

    def _forward(self, i: int, op: PhysicalOperator, finished: Finished) -> None:
        """Send a finished batch's outputs downstream (and dead letters to their sink)."""
        batch = finished.batch
        error = finished.error
        if error is not None:  # its rows never ran: all of them are dead letters
            ref = self.io.write_failed.remote(
                batch.epoch, batch.ref, op.name, f"{type(error).__name__}: {error}"
            )
            self._writes[ref] = batch  # the batch's hold passes to its write
            self._dead_writes.add(ref)
            self.result.dead_letters += batch.rows
            return
        epoch, priority, origin = batch.epoch, batch.priority, batch.origin
        for meta, ref in finished.outputs:
            op.metrics.observe(meta)
            if meta["dead"]:
                self.result.dead_letters += meta["dead"]
                dead = Batch(epoch=epoch, ref=ref, rows=meta["dead"], origin=origin)
                self._hold(dead)
                dead_ref = self.io.write_dead.remote(epoch, ref)
                self._writes[dead_ref] = dead
                self._dead_writes.add(dead_ref)
            if meta["rows_out"] == 0:
                continue
            out = Batch(
                epoch=epoch, ref=ref, rows=meta["rows_out"], priority=priority, origin=origin
            )
            self._hold(out)
            if i + 1 < len(self.operators):
                self.operators[i + 1].add_input(out)
            else:
                self._write(out)
        self._release(batch)  # after its outputs hold the epoch and the origin

    def _write(self, batch: Batch) -> None:
        self._writes[self.writers.write(batch.epoch, batch.ref)] = batch
        self.result.rows_out += batch.rows

    def _track_snapshot(
        self, ref: Any, epoch: int, participant: str, part: int, parts: int
    ) -> None:
        self._acks[ref] = (epoch, participant, part, parts)

    def _collect_writes(self) -> None:
        refs = list(self._writes)
        if refs:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            written = ray.get(ready)  # a sink that cannot write stops the job
            for ref, ids in zip(ready, written, strict=True):
                if ref in self._dead_writes:
                    self._dead_writes.discard(ref)
                    if ids and self._dead_letters is not None:  # ACK mode: committed
                        self._dead_letters.notify(ids)
                elif ids:
                    self._completions.add(ids)
                self.writers.done(ref)
                self._release(self._writes.pop(ref))
            self._completions.flush_if_full()
        refs = list(self._acks)
        if refs:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                epoch, participant, index, count = self._acks.pop(ref)
                key = (epoch, participant)
                values = steps.gather_part(self._ack_parts, key, index, count, ray.get(ref))
                if values is not None:  # a stage's partitions, or a sink's pre-commit
                    stage = participant.startswith("stage:")
                    state = pickle.dumps(values) if stage else {"precommits": values}
                    self._ack(epoch, participant, state)

    def _complete_epochs(self) -> None:
        """Epochs whose batches were all written pre-commit, in order."""
        for epoch in steps.epochs_to_precommit(self.state):
            for op in self.operators:
                op.on_barrier(epoch)
            parts = self.writers.precommit(epoch)
            for index, ref in enumerate(parts):
                self._acks[ref] = (epoch, SINK, index, len(parts))
            self._acks[self.io.precommit_dead.remote(epoch)] = (epoch, DEAD, 0, 1)

    # -- holds: what keeps an epoch (and, in ACK mode, a read) from completing -------------

    def _hold(self, batch: Batch) -> None:
        steps.hold(self.state, batch)

    def _release(self, batch: Batch) -> None:
        origin = steps.release(self.state, batch)
        if origin is not None:
            self._ledger.ack(origin)

    # -- checkpoints: failure and commit -----------------------------------------------------

    def _ack(self, epoch: int, participant: str, state: Any) -> None:
        """Hand ``participant``'s state of ``epoch`` to the coordinator, on the committer
        thread: the ack that completes an epoch saves it and commits it there."""
        assert self._committer is not None
        self._committer.submit(partial(self.coordinator.ack, epoch, participant, state))

    def _check_timeouts(self) -> None:
        """Fail epochs past their timeout, on the committer thread (where the sinks are
        committed, so that an abort never runs beside a commit), when it is idle (checks do
        not pile up behind a slow commit)."""
        assert self._committer is not None
        now = time.monotonic()
        # At most every 0.1 s: timeouts are seconds, and a hand-off to the committer on every
        # turn of the loop (~2 ms) costs the driver's CPU (measured: first rows ~0.4 s later
        # and ~3 % less throughput with checkpoints on 2 cores).
        if now >= self._next_timeout_check and not self._committer.queued:
            self._next_timeout_check = now + _TIMEOUT_CHECK_S
            self._committer.submit(self.coordinator.check_timeouts)

    def _checkpointing_failed(self, error: BaseException) -> None:
        """An ack raised on the committer thread: the job stops with that error."""
        self._committer_error = error
        self._wake.set()

    def _commit_positions(self, positions: dict[str, Any]) -> None:
        self._positions.submit(positions)  # on a thread of their own: see PositionCommitter

    def _abort(self, epoch: Any, reason: str) -> None:
        """A checkpoint failed (timeout, or its state could not be saved): its epoch's output
        would be skipped by the next one, so the job stops; a rerun resumes from the last
        complete checkpoint and replays the epoch. Staged output of the epoch is dropped."""
        lifecycle.abort_staged((self.sink, self.dead_sink), self.ctx, int(epoch), self._log)
        if self._fatal is None:
            self._fatal = JobAbortedError(f"checkpoint {int(epoch)} failed: {reason}")
            self._fatal_reason = f"checkpoint {int(epoch)} failed"
        self._wake.set()  # called on the committer thread: the loop stops at once

    def _commit(self, epoch: Any, states: Any) -> None:
        try:
            if self._fatal is not None:
                raise JobAbortedError(f"epoch {epoch} not committed: an earlier commit failed")
            self.mode.commit(int(epoch), states)
        except Exception as error:
            # Later epochs must not be committed past this one: stop the job; a rerun
            # re-commits from the checkpoint (commits are idempotent).
            if self._fatal is None:
                self._fatal, self._fatal_reason = error, f"committing epoch {epoch} failed"
            raise
