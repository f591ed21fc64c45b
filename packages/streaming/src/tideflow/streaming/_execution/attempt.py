"""One attempt at running a job: restore the last checkpoint, start the actors, loop.

The attempt holds only references: batches are read by the I/O actor, pass through each
stage's physical operator (see :mod:`tideflow.streaming._planner`), and are written by the
sink's writers (the I/O actor's, and more with ``write(sink, writers=n)``); the driver sees
row counts and ``ObjectRef``\\ s. Every batch carries the epoch it was read in. A checkpoint
barrier is a point in the source (its split positions); epoch ``e`` is complete once every
batch read before its barrier has been written, and then the sinks pre-commit ``e``. The
coordinator (see :mod:`._execution.checkpointing`) saves the source positions, the stages'
snapshots and the pre-commit states and only then lets the sinks commit — so a rerun after
any crash replays from the last barrier and a commit is never repeated with new data.

The loop's decisions are plain functions (:mod:`._execution.steps`) over its state
(:class:`._execution.state.LoopState`); how much may be sent where is a
:class:`._execution.backpressure.BackpressurePolicy`; epoch vs record-level ACK commits are
a :class:`._execution.commit_modes.CommitMode` chosen once. Everything an attempt starts is
its own, so that the executor can drop a failed attempt and begin another from the last
checkpoint (:mod:`._execution.recovery`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ray

from tideflow.streaming._acks import AckLedger
from tideflow.streaming._execution import lifecycle, steps
from tideflow.streaming._execution.backpressure import QueueLimits
from tideflow.streaming._execution.checkpointing import Checkpointing
from tideflow.streaming._execution.commit_modes import (
    DEAD,
    SINK,
    SOURCE,
    BarrierStep,
    CommitContext,
    commit_mode,
)
from tideflow.streaming._execution.committer import Completions
from tideflow.streaming._execution.nodes import NodeWatch, nodes_of
from tideflow.streaming._execution.options import RunOptions
from tideflow.streaming._execution.state import Batch, EpochCounts, LoopState, SplitState
from tideflow.streaming._metrics import JobResult, StageMetrics
from tideflow.streaming._operators.base import Finished, OperatorHooks, PhysicalOperator
from tideflow.streaming._operators.write import SinkWriters
from tideflow.streaming._plan import Plan, StageSpec, split_fused
from tideflow.streaming._planner import PlanContext, plan_operator, restore_states, stateful_stages
from tideflow.streaming._worker import IOWorker, Written
from tideflow.streaming.connectors._base import JobContext, Sink

__all__ = ["Attempt", "io_actor_name"]

_POLL_S = 0.002  # the longest a wait on Ray refs lasts: pool futures cannot interrupt it
_IDLE_S = 0.02  # the longest a wait with no refs lasts: everything else sets the wake event,
# so this only paces time-driven work (checkpoint intervals, timeouts, autoscaling ticks)


def io_actor_name(ctx: JobContext, attempt: int) -> str:
    """The I/O actor's name in Ray (``ray list actors`` shows it): the job, run and attempt."""
    return f"tideflow-io:{ctx.job_id}:{ctx.run}.{attempt}"


class Attempt:
    """Runs a :class:`Plan` from its last checkpoint to the end of a bounded source, a
    stop, or a failure. ``attempt`` counts from 0 within the run."""

    def __init__(
        self,
        plan: Plan,
        *,
        ctx: JobContext,
        result: JobResult,
        options: RunOptions,
        checkpoints_uri: str,
        dead_sink: Sink,
        attempt: int = 0,
        log: Any,
        pools: dict[str, Any] | None = None,
    ) -> None:
        assert plan.sink is not None
        self.plan, self.ctx, self.result, self.options = plan, ctx, result, options
        self.sink: Sink = plan.sink
        self.dead_sink = dead_sink
        self.attempt = attempt
        self.pools: dict[str, Any] = pools if pools is not None else {}
        """Stage pools handed on by the earlier attempt (taken when the stages start), then
        those this attempt hands on to the next one when it ends for a restart or a move."""
        checkpoint = options.checkpoint
        self.interval_s = checkpoint.interval_s if checkpoint is not None else None
        self.epoch_cap = checkpoint.max_batches if checkpoint is not None else None
        self.backpressure = options.backpressure or QueueLimits(options.queue_limit)
        self._log = log
        self._wake = threading.Event()
        self._stop = False
        self.checkpoints = Checkpointing(
            checkpoints_uri=checkpoints_uri,
            config=checkpoint,
            ctx=ctx,
            sinks=(self.sink, dead_sink),
            commit_positions=lambda positions: plan.source.commit_positions(ctx, positions),
            wake=self._wake.set,
            log=log,
        )
        self.coordinator = self.checkpoints.coordinator
        self.state = LoopState()
        self.counts = EpochCounts()  # rows per epoch, taken back if the epoch is replayed
        self._ledger = AckLedger(plan.source)  # reads in flight, acknowledged prefix
        self._completions = Completions(options.on_complete, options.complete_every)
        self._dead_letters = (
            Completions(options.on_dead_letter, options.complete_every, name="on_dead_letter")
            if options.on_dead_letter is not None
            else None
        )
        self.mode = commit_mode(
            checkpoint.mode if checkpoint is not None else "epoch",
            CommitContext(
                coordinator=self.coordinator,
                ack=self.checkpoints.ack,
                sink=self.sink,
                dead_sink=dead_sink,
                job=lambda: self.ctx,
                result=lambda: self.result,
                ledger=self._ledger,
                completions=self._completions,
                commit_positions=self.checkpoints.positions.submit,
                dead_letters=self._dead_letters,
            ),
        )
        self.checkpoints.mode = self.mode
        # In ACK mode sinks commit as they write: a checkpoint is the source's positions.
        for name in (*self.mode.participants, *stateful_stages(plan)):
            self.coordinator.register(name)
        self.fused = split_fused(plan)  # fused stages run in the I/O actor, the rest in pools
        self.operators: list[PhysicalOperator] = []  # those of the pooled stages
        self._fused_metrics: dict[str, StageMetrics] = {}
        self.io: Any = None  # the I/O actor, once started
        self.writers: SinkWriters | None = None
        self._stage_states: dict[str, Any] = {}  # restored state of stateful stages
        self.nodes = NodeWatch()
        self._pinned_nodes: set[str] = set()  # where the I/O, writers and keyed actors run
        self.migrating = False  # a node of theirs is draining: the run goes on elsewhere
        self._writes: dict[Any, Batch] = {}  # write ref -> the batch it holds
        self._dead_writes: set[Any] = set()  # those of them that write dead letters

    # -- life cycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the epoch in flight, take a final checkpoint and return (thread-safe)."""
        self._stop = True
        self._wake.set()

    def fail(self, error: BaseException, reason: str) -> None:
        """Stop with ``error`` (thread-safe): a lost lease, say."""
        self.checkpoints.fail(error, reason)

    def run(self, started: float, stage_metrics: dict[str, StageMetrics]) -> None:
        """Run to the end; ``stage_metrics`` (by stage) go on counting from earlier attempts.
        On an error, everything the attempt started is stopped before it is raised."""
        try:
            self._restore()
            self._start_actors(stage_metrics)  # a lost node may fail it: stop what started
            self.checkpoints.start()
            self._loop(started)
        except BaseException:
            self.shutdown(wait=False, hand_on=True)
            raise
        self.shutdown(wait=True, hand_on=self.migrating)

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
            self.checkpoints.commit(last_epoch, restored.states)
            if self.attempt == 0:
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
            "job.started" if self.attempt == 0 else "job.restarted",
            restored_from=last_epoch,
            splits=len(splits),
            finished_splits=len(finished),
            attempt=self.attempt,
        )

    def _start_actors(self, stage_metrics: dict[str, StageMetrics]) -> None:
        placement = lifecycle.io_placement(
            self.options.io_resources, self.options.io_label_selector
        )
        remote_io: Any = ray.remote(IOWorker)
        self.io = remote_io.options(name=io_actor_name(self.ctx, self.attempt), **placement).remote(
            self.plan.source,
            self.sink,
            self.dead_sink,
            self.ctx,
            priority_column=self.plan.priority_column,
            id_column=self.options.id_column,
            ack_seq_base=self.mode.ack_seq_base(self.ctx.run, self.attempt),
            track_dead_letters=self._dead_letters is not None,
            read_stages=self.fused.read,
            write_stages=self.fused.write,
        )
        extra = lifecycle.start_writers(
            self.sink, self.ctx, self.plan.sink_writers, self.options.id_column, placement
        )
        self.writers = SinkWriters([self.io, *extra])
        splits = self.state.splits.values()
        opened = [self.io.open.remote(s.split, s.state) for s in splits if not s.finished]
        hooks = OperatorHooks(
            hold=self._hold,
            release=self._release,
            wake=lambda _future: self._wake.set(),
            snapshot=self.checkpoints.track,
            log=self._log,
        )
        context = PlanContext(hooks=hooks, states=self._stage_states, pools=self.pools)
        self.operators = [plan_operator(spec, context) for spec in self.fused.pooled]
        for op in self.operators:  # counted on from an earlier attempt
            op.metrics = stage_metrics.setdefault(op.name, op.metrics)
        for spec in (*self.fused.read, *self.fused.write):
            fresh = StageMetrics(name=spec.name)
            self._fused_metrics[spec.name] = stage_metrics.setdefault(spec.name, fresh)
        by_name = {op.name: op.metrics for op in self.operators} | self._fused_metrics
        self.result.stages = {spec.name: by_name[spec.name] for spec in self.plan.stages}
        # Re-batching stages keep the rest of an epoch until nothing upstream holds rows of it.
        self._track_upstream = any(spec.batch_size is not None for spec in self.plan.stages)
        ray.get(opened)
        lifecycle.wait_for_stages(self.operators, self._log)
        stateful = [a for op in self.operators for a in op.stateful_actors()]
        self._pinned_nodes = set(nodes_of([*self.writers.writers, *stateful]))

    def shutdown(self, *, wait: bool, hand_on: bool = False) -> None:
        """Stop the committer, then every actor of the attempt (the connectors' driver-side
        clients stay open: a next attempt uses them). With ``hand_on``, the stateless
        stages' pools stay up, in :attr:`pools`, for the next attempt: a restart keeps
        their live actors (the pool itself replaces any it lost)."""
        self.checkpoints.shutdown(wait=wait)
        for op in self.operators:
            pool = op.hand_on() if hand_on else None
            if pool is not None:
                self.pools[op.name] = pool
            op.shutdown(wait=wait)
        writers = self.writers.writers if self.writers is not None else []
        for actor in {id(a): a for a in [self.io, *writers] if a is not None}.values():
            ray.kill(actor)

    # -- the loop ----------------------------------------------------------------------------

    def _begin_epoch(self) -> int:
        self.state.epoch, self.state.epoch_reads = int(self.coordinator.begin_epoch()), 0
        self.counts.forget_through(self.coordinator.last_completed)
        return self.state.epoch

    def _loop(self, started: float) -> None:
        state, splits, source = self.state, self.state.splits, self.plan.source
        first_epoch = self._begin_epoch()
        for op in self.operators:
            op.start(first_epoch)  # epochs before this run's first are done
        epoch_started = time.monotonic()
        barrier_wanted = False
        next_progress = started + 1.0
        next_discovery = time.monotonic() + self.options.rediscover_s
        on_progress = self.options.on_progress
        while True:
            now = time.monotonic()
            self.result.splits_total = len(splits)
            self.result.splits_finished = sum(1 for s in splits.values() if s.finished)
            # Unbounded sources end only when every split reached an end-of-stream marker.
            all_done = self.result.splits_finished == len(splits)
            exhausted = all_done and (source.bounded or bool(splits))
            if not source.bounded and now >= next_discovery:
                next_discovery = now + self.options.rediscover_s
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
                reading=state.reading,
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
            self._collect_reads()
            self._turn()
            if on_progress is not None and now >= next_progress:
                next_progress = now + 1.0
                on_progress(self.result)
            self._wait()
        input_ended = not self.result.stopped  # keyed stages flush what they keep (on_end)
        while state.barriers or self.checkpoints.acks:
            self._turn(input_ended=input_ended)
            self._wait()
        self.checkpoints.wait_idle()  # the last epochs' commits
        self.checkpoints.raise_if_failed()

    def _turn(self, *, input_ended: bool = False) -> None:
        """Everything after reading: stages, writes, complete epochs, failures, timeouts."""
        draining = self.nodes.poll(time.monotonic())
        if draining:
            self._leave(draining)
        self._advance_stages(input_ended=input_ended)
        self._note_held()
        self._collect_writes()
        self._complete_epochs()
        self.checkpoints.raise_if_failed()
        self.checkpoints.check_timeouts()

    def _leave(self, draining: set[str]) -> None:
        """Nodes began draining: stateless stages move off them now; if the I/O actor, a
        writer or a keyed partition is there, stop reading and commit what was read — the
        executor goes on from that checkpoint with new actors elsewhere."""
        self._log.warning("job.nodes_draining", nodes=sorted(draining))
        for op in self.operators:
            op.on_nodes_draining(draining)
        if self._pinned_nodes & draining and not self._stop:
            self._log.warning("job.migrating", nodes=sorted(self._pinned_nodes & draining))
            self.migrating = True
            self.stop()

    def _note_held(self) -> None:
        held = self.state.reads_in_flight + len(self._writes)
        held += sum(op.held for op in self.operators)
        self.result.peak_batches_held = max(self.result.peak_batches_held, held)

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

    def _collect_reads(self) -> None:
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
                self._count_dead(epoch, meta.get("dead", 0))
                if meta.get("dead_rows") and self._dead_letters is not None:
                    self._dead_letters.notify(meta["dead_rows"])  # ACK mode: committed
                origin = self._ledger.track(s.split.split_id, meta.get("offsets"))
                next_awake_s = meta.get("next_awake_s")  # the reader's wish, as a delay
                rows_read = meta.get("rows_read", meta["rows"])  # before fused stages
                if rows_read == 0:
                    if origin is not None:  # only undecodable records: dead-lettered already
                        self._ledger.ack(origin)
                    steps.note_empty_read(self.state, s, epoch, seen, next_awake_s)
                    continue
                steps.note_next_awake(s, seen, next_awake_s)
                self.result.rows_in += rows_read
                self.counts.add(epoch, rows_in=rows_read)
                self._observe_fused(epoch, meta.get("stages", ()))
                if meta["rows"] == 0:  # the fused stages kept none of the rows
                    continue
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
        """Sleep until something may have changed: a Ray result (polled every 2 ms: a pool
        future cannot interrupt ``ray.wait``), or, with no Ray result awaited, a pool future,
        a checkpoint or a stop (they set the wake event), or 20 ms for time-driven work."""
        if self._wake.is_set():
            self._wake.clear()
            return
        refs = [s.reading[0][0] for s in self.state.splits.values() if s.reading]
        refs += list(self._writes) + list(self.checkpoints.acks)
        for op in self.operators:
            refs += op.wait_refs()
        if refs:
            ray.wait(refs, num_returns=1, timeout=_POLL_S)
        else:
            self._wake.wait(_IDLE_S)
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
            while op.can_dispatch():
                spec, waiting = self._toward(i)
                if self.backpressure.budget(spec, waiting=waiting, sent=op.running) <= 0:
                    op.metrics.note_backpressure(now, self.backpressure.reason(spec))
                    break
                op.dispatch()
            op.on_tick(wall, self.state.epoch, input_done=input_ended and upstream == 0)
            upstream += op.held
            op.metrics.queue_depth = len(op.queue)
        self._note_backlogs()

    def _toward(self, i: int) -> tuple[StageSpec | None, int]:
        """Where stage ``i`` sends its outputs (the next stage's spec; None: the sink) and
        what waits there now (its queue; for the sink, the writes in flight)."""
        if i + 1 < len(self.operators):
            downstream = self.operators[i + 1]
            return downstream.spec, downstream.waiting
        return None, len(self._writes)

    def _note_backlogs(self) -> None:
        """Tell each stage how much of its queue waits for its own actors, once every stage
        dispatched: none while the stage is held back by the next one (or the sink) —
        backpressure with work waiting there: more actors would only wait too — else all
        of it (the stage is at its capacity, or its own calls in flight fill the queue
        limit). Its pool's scaler counts it as backlog: with a small queue limit, calls
        never pile up in the pool itself."""
        for i, op in enumerate(self.operators):
            spec, waiting = self._toward(i)
            held_back = (
                waiting > 0
                and op.in_flight < op.capacity
                and self.backpressure.budget(spec, waiting=waiting, sent=op.running) <= 0
            )
            op.note_backlog(0 if held_back else len(op.queue))

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
            self._count_dead(batch.epoch, batch.rows)
            return
        epoch, priority, origin = batch.epoch, batch.priority, batch.origin
        for meta, ref in finished.outputs:
            op.metrics.observe(meta)
            if meta["dead"]:
                self._count_dead(epoch, meta["dead"])
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

    def _observe_fused(self, epoch: int, metas: Any) -> None:
        """Count the calls of fused stages (run in the I/O actor, reported with a read or
        a write); their dead letters are written there already."""
        for meta in metas:
            self._fused_metrics[meta["stage"]].observe(meta)
            self._count_dead(epoch, meta["dead"])

    def _count_dead(self, epoch: int, rows: int) -> None:
        if rows:
            self.result.dead_letters += rows
            self.counts.add(epoch, dead_letters=rows)

    def _write(self, batch: Batch) -> None:
        assert self.writers is not None
        self._writes[self.writers.write(batch.epoch, batch.ref)] = batch  # rows: once written

    def _collect_writes(self) -> None:
        assert self.writers is not None
        refs = list(self._writes)
        if refs:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            outcomes = ray.get(ready)  # a sink that cannot write stops the job
            for ref, outcome in zip(ready, outcomes, strict=True):
                batch = self._writes.pop(ref)
                if ref in self._dead_writes:
                    self._dead_writes.discard(ref)
                    if outcome and self._dead_letters is not None:  # ACK mode: committed
                        self._dead_letters.notify(outcome)
                else:
                    self._note_written(batch.epoch, outcome)
                self.writers.done(ref)
                self._release(batch)
            self._completions.flush_if_full()
        refs = list(self.checkpoints.acks)
        if refs:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            self.checkpoints.collect(ready)

    def _note_written(self, epoch: int, written: Written) -> None:
        """A sink write ended: count its rows (after any fused stages before the sink)."""
        self._observe_fused(epoch, written.stages)
        self.result.rows_out += written.rows
        self.counts.add(epoch, rows_out=written.rows)
        if written.ids:
            self._completions.add(written.ids)

    def _complete_epochs(self) -> None:
        """Epochs whose batches were all written pre-commit, in order."""
        assert self.writers is not None
        for epoch in steps.epochs_to_precommit(self.state):
            for op in self.operators:
                op.on_barrier(epoch)
            parts = self.writers.precommit(epoch)
            for index, ref in enumerate(parts):
                self.checkpoints.track(ref, epoch, SINK, index, len(parts))
            self.checkpoints.track(self.io.precommit_dead.remote(epoch), epoch, DEAD, 0, 1)

    # -- holds: what keeps an epoch (and, in ACK mode, a read) from completing -------------

    def _hold(self, batch: Batch) -> None:
        steps.hold(self.state, batch)

    def _release(self, batch: Batch) -> None:
        origin = steps.release(self.state, batch)
        if origin is not None:
            self._ledger.ack(origin)
