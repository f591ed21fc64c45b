"""The keyed operator: a stateful stage, one :class:`KeyedWorker` actor per partition.

Every partition actor receives each batch's reference and keeps the rows whose key hashes
to it (see :mod:`tideflow.streaming._keyed`). Its state is part of every checkpoint: at an
epoch's barrier every partition is asked for a snapshot *after* the epoch's last batch and
*before* the next epoch's first (an aligned barrier). A failing partition actor fails the
job: its state is only as good as the last checkpoint.

Timers and the end of the input are calls too, sent on the loop's tick (:meth:`on_tick`)
in line with the batches, so they keep the same order and the same barriers: each call's
meta says when the partition's earliest timer is due, and once it is, the partition gets a
``fire_timers(now)`` call; when the source ended and every batch reached this stage, every
partition gets an ``end()`` call. Their output rows go on like a batch's, in the epoch that
the call holds (see :meth:`KeyedOperator.on_tick`), so they are committed exactly once.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tideflow.streaming._execution.state import Batch
from tideflow.streaming._operators.base import (
    Finished,
    OperatorHooks,
    PhysicalOperator,
    participant,
)
from tideflow.streaming._plan import StageSpec
from tideflow.streaming.errors import JobAbortedError

__all__ = ["KeyedOperator", "restore_partitions"]


def restore_partitions(spec: StageSpec, state: bytes, job_id: str) -> list[bytes | None]:
    """The partitions' snapshots from a checkpoint state (their number is fixed)."""
    parts: list[bytes | None] = pickle.loads(state)
    if len(parts) != spec.partitions:
        message = (
            f"stage {spec.name!r} has {spec.partitions} partitions but the checkpoint of "
            f"job {job_id!r} has {len(parts)}; partitions are fixed for a job's lifetime"
        )
        raise JobAbortedError(message)
    return parts


def _ray_ready(refs: list[Any]) -> bool:
    import ray

    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
    return len(ready) == len(refs)


def _ray_get(refs: list[Any]) -> list[Any]:
    import ray

    return list(ray.get(refs))


@dataclass(eq=False)
class _Call:
    metas: list[Any]  # per partition called: the ref of its meta
    outputs: list[Any]  # per partition called: the ref of its (rows, dead letters)
    parts: list[int]  # the partitions called, in order
    method: str  # process, fire_timers or end


class KeyedOperator(PhysicalOperator):
    """A keyed stage of ``spec`` on ``actors`` (one per partition, in partition order).

    ``ready(refs)`` (all of them done?) and ``get(refs)`` default to Ray's; tests pass
    their own along with fake actors.
    """

    participant: str

    def __init__(
        self,
        spec: StageSpec,
        actors: Sequence[Any],
        hooks: OperatorHooks | None = None,
        *,
        ready: Callable[[list[Any]], bool] = _ray_ready,
        get: Callable[[list[Any]], list[Any]] = _ray_get,
    ) -> None:
        super().__init__(spec, hooks or OperatorHooks())
        self.participant = participant(spec)
        self.actors = list(actors)
        self.snapshot_epoch = 0
        """The last epoch whose snapshot was requested."""
        self._ready, self._get = ready, get
        self._calls: dict[_Call, Batch] = {}
        # A snapshot at a barrier must hold all of its epoch's rows: in this queue a later
        # epoch's batch never overtakes an earlier one's. (Before this stage, priorities
        # can still let it: see the README's note on priorities with keyed stages.)
        self.epoch_major = True
        self._last_epoch = 0  # of the last call sent
        unknown = -math.inf if spec.on_timer is not None else None
        self._due: list[float | None] = [unknown] * len(self.actors)
        """Per partition: its earliest timer, as its latest answer said (None: none). Not
        known at the start (restored timers may be due already): each partition is asked."""
        self._firing = [False] * len(self.actors)
        self._ended = False
        self._probes: list[Any] | None = None  # calls that say the actors are up

    @property
    def capacity(self) -> int:
        return 2 * len(self.actors)

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    def start(self, first_epoch: int) -> None:
        self.snapshot_epoch = first_epoch - 1

    def _submit(self, batch: Batch) -> None:
        self._send(batch, "process", range(len(self.actors)), batch.ref)

    def _send(self, batch: Batch, method: str, parts: Sequence[int], *args: Any) -> None:
        # The aligned barrier: snapshots of earlier epochs go before this epoch's calls.
        self._snapshots(batch.epoch - 1)
        self._last_epoch = max(self._last_epoch, batch.epoch)
        metas, outputs = [], []
        for index in parts:
            remote = getattr(self.actors[index], method)
            meta, output = remote.options(num_returns=2).remote(*args)
            metas.append(meta)
            outputs.append(output)
        self._calls[_Call(metas=metas, outputs=outputs, parts=list(parts), method=method)] = batch

    def on_tick(self, now: float, epoch: int, *, input_done: bool = False) -> None:
        """Send ``fire_timers(now)`` to the partitions whose earliest timer is due (with
        ``on_timer``; one such call in flight per partition) — or, once the input is done,
        no more timers (like Flink's processing-time timers at the end of a bounded input)
        but ``end()`` to every partition once every queued batch went out (with ``on_end``).

        The call holds an epoch like a batch: the end, the epoch being read (the last; its
        barrier waits for the call's output). Timers, the earliest epoch that can still
        take output without breaking the aligned barrier: not before the last epoch sent
        here (its batches may still be in flight) nor one already snapshotted — the epoch
        of the rows sent last, or the next one once that was snapshotted. Past the epoch
        being read (a stopped job's last epochs are done), timers wait for a rerun.
        """
        if self._ended:
            return
        if input_done:
            if not self.queue:
                self._ended = True
                if self.spec.on_end is not None:
                    self._send(self._held(epoch), "end", range(len(self.actors)))
            return
        if self.spec.on_timer is None:
            return
        due = [
            index
            for index, at in enumerate(self._due)
            if at is not None and at <= now and not self._firing[index]
        ]
        target = max(self._last_epoch, self.snapshot_epoch + 1)
        if not due or target > epoch:
            return
        self._send(self._held(target), "fire_timers", due, now)
        for index in due:
            self._firing[index] = True

    def _held(self, epoch: int) -> Batch:
        """A batch of no input rows, for the output of a timer or end call: it holds
        ``epoch`` until its rows are written (the executor releases it then)."""
        batch = Batch(epoch=epoch, ref=None, rows=0)
        self.hooks.hold(batch)
        return batch

    def take_ready(self) -> list[Finished]:
        done = []
        for call, batch in list(self._calls.items()):
            if not self._ready(call.metas):
                break  # outputs leave in input order
            del self._calls[call]
            metas = self._get(call.metas)  # a failing partition actor fails the job
            for index, meta in zip(call.parts, metas, strict=True):
                self._due[index] = meta.get("next_due")
                if call.method == "fire_timers":
                    self._firing[index] = False
            done.append(Finished(batch, list(zip(metas, call.outputs, strict=True))))
        return done

    def on_barrier(self, epoch: int) -> None:
        self._snapshots(epoch)

    def held_epochs(self) -> set[int]:
        return super().held_epochs() | {b.epoch for b in self._calls.values()}

    def _snapshots(self, upto: int) -> None:
        while self.snapshot_epoch < upto:
            self.snapshot_epoch += 1
            for index, actor in enumerate(self.actors):
                self.hooks.snapshot(
                    actor.snapshot.remote(),
                    self.snapshot_epoch,
                    self.participant,
                    index,
                    len(self.actors),
                )

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every partition actor to be up (each holds keys)."""
        import ray

        if self._probes is None:
            self._probes = [actor.keys.remote() for actor in self.actors]
        ready, _ = ray.wait(self._probes, num_returns=len(self._probes), timeout=timeout)
        return len(ready) == len(self._probes)

    def wait_refs(self) -> list[Any]:
        head = next(iter(self._calls), None)
        return list(head.metas) if head is not None else []

    def stateful_actors(self) -> list[Any]:
        return list(self.actors)

    def shutdown(self, *, wait: bool) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
