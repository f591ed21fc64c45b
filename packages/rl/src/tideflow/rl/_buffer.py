"""The bounded experience buffer: slots, back-pressure, in-order hand-out, snapshots.

A slot is taken when rollout *starts* a batch and freed when the trainer has *finished*
training on it (and published the new weights). So at most ``capacity`` batches exist
between the two sides — generating, scored and waiting, or being trained on — and a batch
started right after a slot frees is generated with weights at most ``capacity − 1``
versions old: ``capacity=1`` is the synchronous loop, ``capacity=2`` two-batch overlap.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.rl._data import Batch
from tideflow.rl.errors import RLError

__all__ = ["ExperienceBuffer"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.buffer")


class ExperienceBuffer:
    """Run as an async Ray actor (``max_concurrency`` > 1); also usable in-process."""

    def __init__(self, capacity: int, staleness_limit: int) -> None:
        self.capacity = capacity
        self.staleness_limit = staleness_limit
        self._slots: set[int] = set()
        self._stored: dict[int, Batch] = {}
        self._changed = asyncio.Condition()
        self.rollout_wait_s = 0.0
        """Seconds rollout waited for a free slot (back-pressure)."""
        self.trainer_wait_s = 0.0
        """Seconds the trainer waited for its next batch."""
        self.high_water = 0
        """Most scored batches waiting at once."""

    async def reserve(self, index: int) -> float:
        """Wait for a free slot and take it for batch ``index``; returns the seconds waited."""
        started = time.perf_counter()
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._slots) < self.capacity)
            self._slots.add(index)
        waited = time.perf_counter() - started
        self.rollout_wait_s += waited
        return waited

    async def put(self, batch: Batch) -> None:
        """Store a scored batch in its reserved slot."""
        async with self._changed:
            if batch.index not in self._slots:
                raise RLError(f"batch {batch.index} was put without a reserved slot")
            self._stored[batch.index] = batch
            self.high_water = max(self.high_water, len(self._stored))
            self._changed.notify_all()

    async def take(self, index: int, version: int, hand_over: bool = True) -> Batch | None:
        """Wait for batch ``index`` and hand it to the trainer, now at policy ``version``
        (``hand_over=False``: the trainer has it already; only take it out of the buffer,
        with the same checks, and return ``None``)."""
        started = time.perf_counter()
        async with self._changed:
            await self._changed.wait_for(lambda: index in self._stored)
            batch = self._stored.pop(index)
        self.trainer_wait_s += time.perf_counter() - started
        lag = max((version - s.version for s in batch.samples), default=0)
        if lag > self.staleness_limit:
            message = (
                f"batch {index} has samples {lag} versions behind the trainer; the limit "
                f"is {self.staleness_limit}"
            )
            raise RLError(message)
        return batch if hand_over else None

    async def release(self, index: int) -> None:
        """The trainer finished batch ``index``: free its slot."""
        async with self._changed:
            self._slots.discard(index)
            self._changed.notify_all()

    def snapshot(self) -> list[dict[str, Any]]:
        """The scored batches waiting, as JSON-able dicts (a checkpoint's buffer contents)."""
        return [self._stored[i].as_dict() for i in sorted(self._stored)]

    async def restore(self, batches: Sequence[dict[str, Any]]) -> list[int]:
        """Put back the batches of a snapshot (each takes a slot); returns their indices."""
        async with self._changed:
            for data in batches:
                batch = Batch.from_dict(data)
                self._slots.add(batch.index)
                self._stored[batch.index] = batch
            self._changed.notify_all()
        _log().info("buffer_restored", batches=sorted(self._stored))
        return sorted(self._stored)

    def stats(self) -> dict[str, float]:
        """Waiting times and occupancy so far."""
        return {
            "rollout_wait_s": self.rollout_wait_s,
            "trainer_wait_s": self.trainer_wait_s,
            "high_water": self.high_water,
            "slots_used": len(self._slots),
            "waiting": len(self._stored),
        }
