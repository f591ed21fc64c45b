"""The sink's writers: writer 0 in the job's I/O actor, writers 1 … n-1 (``write(sink,
writers=n)``, for sinks whose ``parallel_writes`` allows it) in actors of their own.

A batch goes to the writer with the fewest writes outstanding (the lowest index on a tie),
so a slow write on one writer does not hold back the others. At an epoch's barrier every
writer pre-commits the epoch — each call after that writer's writes of the epoch, as an
actor runs its calls in order — and the sink commits the pre-commits of all of them
together (:meth:`Sink.commit` takes one per writer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["SinkWriters"]


class SinkWriters:
    """Routes writes over ``writers`` (actor handles with ``write.remote(epoch, ref)`` and
    ``precommit.remote(epoch)``; the first is the I/O actor)."""

    def __init__(self, writers: Sequence[Any]) -> None:
        if not writers:
            raise ValueError("a sink needs at least one writer")
        self.writers = list(writers)
        self.outstanding = [0] * len(self.writers)
        self._by_ref: dict[Any, int] = {}

    def __len__(self) -> int:
        return len(self.writers)

    def write(self, epoch: int, payload: Any) -> Any:
        """Send a batch to the least busy writer; returns the call's ref."""
        index = min(range(len(self.writers)), key=self.outstanding.__getitem__)
        ref = self.writers[index].write.remote(epoch, payload)
        self.outstanding[index] += 1
        self._by_ref[ref] = index
        return ref

    def done(self, ref: Any) -> None:
        """The write ``ref`` finished (refs of other calls are ignored)."""
        index = self._by_ref.pop(ref, None)
        if index is not None:
            self.outstanding[index] -= 1

    def precommit(self, epoch: int) -> list[Any]:
        """Each writer's pre-commit of ``epoch``, in writer order (refs)."""
        return [writer.precommit.remote(epoch) for writer in self.writers]
