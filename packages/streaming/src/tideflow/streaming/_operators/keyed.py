"""The keyed operator: a stateful stage, one :class:`KeyedWorker` actor per partition.

Every partition actor receives each batch's reference and keeps the rows whose key hashes
to it (see :mod:`tideflow.streaming._keyed`). Its state is part of every checkpoint: at an
epoch's barrier every partition is asked for a snapshot *after* the epoch's last batch and
*before* the next epoch's first (an aligned barrier). A failing partition actor fails the
job: its state is only as good as the last checkpoint.
"""

from __future__ import annotations

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
    metas: list[Any]  # per partition: the ref of its meta
    outputs: list[Any]  # per partition: the ref of its (rows, dead letters)


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

    @property
    def capacity(self) -> int:
        return 2 * len(self.actors)

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    def start(self, first_epoch: int) -> None:
        self.snapshot_epoch = first_epoch - 1

    def _submit(self, batch: Batch) -> None:
        # The aligned barrier: snapshots of earlier epochs go before this epoch's rows.
        self._snapshots(batch.epoch - 1)
        metas, outputs = [], []
        for actor in self.actors:
            meta, output = actor.process.options(num_returns=2).remote(batch.ref)
            metas.append(meta)
            outputs.append(output)
        self._calls[_Call(metas=metas, outputs=outputs)] = batch

    def take_ready(self) -> list[Finished]:
        done = []
        for call, batch in list(self._calls.items()):
            if not self._ready(call.metas):
                break  # outputs leave in input order
            del self._calls[call]
            metas = self._get(call.metas)  # a failing partition actor fails the job
            done.append(Finished(batch, list(zip(metas, call.outputs, strict=True))))
        return done

    def on_barrier(self, epoch: int) -> None:
        self._snapshots(epoch)

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

    def wait_refs(self) -> list[Any]:
        head = next(iter(self._calls), None)
        return list(head.metas) if head is not None else []

    def shutdown(self, *, wait: bool) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
