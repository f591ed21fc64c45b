"""The pool-map operator: a stateless stage run by an elastic pool of :class:`StageWorker`.

Outputs leave in input order. A batch whose call crashed its actor follows the one
bisection rule (:mod:`._execution.bisect`, shared with the exceptions a stage's function
raises): tried again alone on an actor (the crash may have been another call's doing:
calls share an actor), then in halves — first, to keep the order — until the rows that
kill it are alone; a single such row goes to the dead-letter output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tideflow.core.observability import ScaleEvent
from tideflow.core.scheduler import ActorPool, PoolFuture
from tideflow.streaming._execution import bisect, recovery
from tideflow.streaming._execution.state import Batch
from tideflow.streaming._execution.steps import enqueue
from tideflow.streaming._operators.base import Finished, OperatorHooks, PhysicalOperator
from tideflow.streaming._operators.rebatch import Concat, Parts, Rebatcher, materialize, parts
from tideflow.streaming._plan import StageSpec

__all__ = ["PoolMapOperator", "remote_slice"]

_SAMPLE_S = 0.1
"""How often the stage's live actor count (``StageMetrics.actors``) is read from its pool."""

SliceRows = Callable[[Any, int, int], Any]
"""``slice_rows(ref, start, length)``: a ref to that slice of a batch's rows."""


def remote_slice(ref: Any, start: int, length: int) -> Any:
    """Slice a batch in a Ray task (the driver never holds the rows)."""
    from tideflow.streaming._worker import slice_payload

    task: Any = slice_payload
    return task.remote(ref, start, length)


class PoolMapOperator(PhysicalOperator):
    """A stage of ``spec`` on ``pool`` (an :class:`ActorPool`, or anything with its
    ``submit``, ``size``, ``wait_ready``, ``events``, ``stats`` and ``shutdown``)."""

    def __init__(
        self,
        spec: StageSpec,
        pool: ActorPool,
        hooks: OperatorHooks | None = None,
        *,
        slice_rows: SliceRows = remote_slice,
        concat: Concat = parts,
    ) -> None:
        super().__init__(spec, hooks or OperatorHooks())
        self.pool = pool
        self._slice_rows = slice_rows
        self.rebatcher = (
            None
            if spec.batch_size is None
            else Rebatcher(
                spec.batch_size, hold=self.hooks.hold, release=self.hooks.release, concat=concat
            )
        )
        # In submission order; outputs leave in that order (per-key and per-split order kept).
        self._calls: dict[PoolFuture, Batch] = {}
        self._sampled_at = float("-inf")
        # What the pool counted before this operator (one handed on by an earlier attempt):
        # the stage's metrics add only what happened since.
        # (A pool handed on is an ActorPool; a stand-in pool in a test may have neither.)
        self._seen_events = {id(e) for e in getattr(pool, "events", ())}
        self._stats_base: Any = getattr(pool, "stats", None)
        self._handed_on = False

    @property
    def capacity(self) -> int:
        return (self.pool.size + 1) * self.spec.max_in_flight

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    @property
    def running(self) -> int:
        return sum(1 for future in self._calls if not future.done())

    @property
    def held(self) -> int:
        waiting = self.rebatcher.held if self.rebatcher is not None else 0
        return super().held + waiting

    def add_input(self, batch: Batch) -> None:
        if self.rebatcher is None:
            enqueue(self.queue, batch, epoch_major=self.epoch_major)
            return
        for cut in self.rebatcher.add(batch):
            enqueue(self.queue, cut, epoch_major=self.epoch_major)

    def note_upstream(self, busy_epochs: set[int]) -> None:
        if self.rebatcher is not None:
            for cut in self.rebatcher.flush(busy_epochs):
                enqueue(self.queue, cut, epoch_major=self.epoch_major)

    def held_epochs(self) -> set[int]:
        epochs = super().held_epochs() | {b.epoch for b in self._calls.values()}
        if self.rebatcher is not None:
            epochs |= self.rebatcher.epochs()
        return epochs

    def _call(self, batch: Batch, *, isolated: bool = False) -> PoolFuture:
        ref = batch.ref
        if isinstance(ref, Parts):  # re-batched: the actor joins the parts itself
            args: tuple[Any, ...] = ("process_parts", ref.skip, ref.rows, *ref.refs)
        else:
            args = ("process", ref)
        future = self.pool.submit(*args, priority=batch.priority, isolated=isolated)
        future.add_done_callback(self.hooks.wake)
        return future

    def _submit(self, batch: Batch) -> None:
        self._calls[self._call(batch)] = batch

    def _resubmit(self, batches: list[Batch]) -> None:
        """Send ``batches`` alone on their actors, ahead of every call in flight."""
        retries = {self._call(batch, isolated=True): batch for batch in batches}
        self._calls = {**retries, **self._calls}

    def _slice(self, ref: Any, start: int, length: int) -> Any:
        return (
            ref.slice(start, length)
            if isinstance(ref, Parts)
            else self._slice_rows(ref, start, length)
        )

    def take_ready(self) -> list[Finished]:
        done = []
        for future, batch in list(self._calls.items()):
            if not future.done():
                break  # outputs leave in input order
            del self._calls[future]
            finished = self._finish(batch, future)
            if finished is None:
                break  # the batch is tried again: its retry now heads the line
            done.append(finished)
        return done

    def _finish(self, batch: Batch, future: PoolFuture) -> Finished | None:
        """What became of a finished call; None when it failed and was sent again."""
        error = future.exception()
        if error is None:
            return Finished(batch, [(future.meta, future.object_ref)])
        lost = recovery.lost_part(error)
        if lost is not None and lost.kind == "object":
            # The batch's rows are gone with the node that held them, not bad: the run
            # starts again from its last checkpoint and reads them again.
            raise error
        # A crash may have been another call's doing (calls share an actor): unless it ran
        # alone already (with retries, the pool's own retries after a death ran alone).
        suspect = not batch.isolated and self.spec.max_retries == 0
        verdict = bisect.on_failure(batch.rows, neighbours_suspect=suspect)
        if verdict is bisect.Verdict.ISOLATE:
            batch.isolated = True
            self._resubmit([batch])
            return None
        if verdict is bisect.Verdict.HALVE:
            # The actor kept dying on this batch: retry its halves (first, to keep the
            # order) until the rows that kill it are alone.
            self.log.warning(
                "stage.batch_split", stage=self.name, rows=batch.rows, error=str(error)[:300]
            )
            halves = [
                Batch(
                    epoch=batch.epoch,
                    ref=self._slice(batch.ref, start, length),
                    rows=length,
                    priority=batch.priority,
                    origin=batch.origin,
                    isolated=True,
                )
                for start, length in bisect.halves(batch.rows)
            ]
            self.hooks.hold(batch)  # two halves replace one batch
            self._resubmit(halves)
            return None
        # A single row whose actor keeps dying: it goes to the dead-letter output.
        self.log.warning("stage.batch_failed", stage=self.name, error=str(error)[:300])
        self.metrics.dead_letters += batch.rows
        batch.ref = materialize(batch.ref)  # the dead-letter writer takes a payload
        return Finished(batch, error=error)

    def on_tick(self, now: float, epoch: int, *, input_done: bool = False) -> None:
        if now - self._sampled_at >= _SAMPLE_S:  # the pool's counters: a lock and a copy
            self._sampled_at = now
            self.metrics.actors = self.pool.stats.ready
            self.metrics.actors_min = self.spec.min_actors
            self.metrics.actors_max = self.spec.max_actors
            self.metrics.actor_bundle = self.spec.resources.bundle()

    def note_backlog(self, count: int) -> None:
        note = getattr(self.pool, "note_backlog", None)  # a stand-in pool in a test may lack it
        if note is not None:
            note(count)

    def on_nodes_draining(self, node_ids: set[str]) -> None:
        retire = getattr(self.pool, "retire_nodes", None)
        if retire is not None and retire(node_ids):
            self.log.info("stage.leaving_nodes", stage=self.name, nodes=sorted(node_ids))

    def wait_ready(self, timeout: float) -> bool:
        return bool(self.pool.wait_ready(1, timeout=timeout))

    def hand_on(self) -> ActorPool | None:
        """Cancel the queued calls (those running finish; their outputs are dropped: the
        next attempt replays their rows) and hand the pool to the next attempt."""
        if not getattr(self.pool, "reusable", False):
            return None
        for future in self._calls:
            future.cancel()
        self._calls.clear()
        self._count_pool()
        self._handed_on = True
        return self.pool

    def _count_pool(self) -> None:
        # Added: the metrics go on from an earlier attempt of the run (after a restart).
        events = [e for e in self.pool.events if id(e) not in self._seen_events]
        self._seen_events.update(id(e) for e in events)
        self.metrics.scale_events += [e for e in events if isinstance(e, ScaleEvent)]
        stats, base = self.pool.stats, self._stats_base
        self.metrics.retries += stats.retries - (base.retries if base is not None else 0)
        self.metrics.actor_deaths += stats.deaths - (base.deaths if base is not None else 0)
        self._stats_base = stats

    def shutdown(self, *, wait: bool) -> None:
        if self._handed_on:
            return  # the next attempt's operator owns the pool now
        self._count_pool()
        self.metrics.actors = 0  # until the next attempt's pool has actors ready
        self.pool.shutdown(wait=wait, cancel_pending=not wait, timeout=None if wait else 5)
