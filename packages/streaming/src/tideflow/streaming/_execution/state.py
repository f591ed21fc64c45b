"""The executor's mutable state, as plain dataclasses that the steps take and update."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tideflow.streaming._acks import Origin
from tideflow.streaming.connectors._base import Split

__all__ = ["Batch", "EpochCounts", "LoopState", "SplitState"]


@dataclass(eq=False)
class Batch:
    """A reference to rows on their way: read, in a stage, or being written."""

    epoch: int
    """The epoch it was read in (its rows commit with that epoch)."""
    ref: Any
    """The ``ObjectRef`` of its payload (the driver never holds the data)."""
    rows: int
    """How many rows the payload carries."""
    priority: int = 0
    """Higher overtakes lower in every queue (order is kept within a priority)."""
    origin: Origin | None = None
    """ACK mode: the read this batch's rows came from."""
    isolated: bool = False
    """Run alone on its actor (a retry, or a half of a batch that crashed one)."""


@dataclass(eq=False)
class SplitState:
    """One split of the source as the executor reads it."""

    split: Split
    state: Any = None
    """Its position after the last read that returned (what a checkpoint records)."""
    finished: bool = False
    """Read to its end."""
    reading: deque[tuple[Any, Any, int]] = field(default_factory=deque)
    """Reads in flight, in order: (meta ref, table ref, epoch). The I/O actor runs them in
    order, so several can be outstanding (read-ahead) without changing the result."""
    idle_until: float = 0.0
    """Not asked again before this time (driver monotonic clock): after an empty read of an
    unbounded split, or when its reader said when to read it next (``next_awake``)."""
    last_turn: int = 0
    """When it last got a read, as a turn number shared by the splits (0: never):
    ``plan_reads`` serves the least recently served split of a priority first."""

    @property
    def priority(self) -> int:
        """Its split's reading priority (higher first when the read budget is short)."""
        return self.split.priority


@dataclass(eq=False)
class LoopState:
    """What the loop tracks between steps: the epoch being read and the holds on epochs."""

    splits: dict[str, SplitState] = field(default_factory=dict)
    """The source's splits, by id."""
    epoch: int = 0
    """The epoch being read."""
    epoch_reads: int = 0
    """Its reads that may carry rows (what ``max_batches`` caps)."""
    pending: dict[int, int] = field(default_factory=dict)
    """Epoch → its batches and writes not done yet (absent: none)."""
    barriers: deque[int] = field(default_factory=deque)
    """Epochs whose barrier (source positions) is recorded and whose sink has not
    pre-committed yet, in order."""

    @property
    def reads_in_flight(self) -> int:
        return sum(len(s.reading) for s in self.splits.values())

    @property
    def reading(self) -> bool:
        return any(s.reading for s in self.splits.values())


@dataclass
class EpochCounts:
    """Rows read, written and dead-lettered per epoch not yet known to be committed: after a
    restart from the last checkpoint the epochs after it are replayed, and the run's counts
    take theirs back (:meth:`uncommitted`) so that a replayed row counts once."""

    by_epoch: dict[int, list[int]] = field(default_factory=dict)

    def add(
        self, epoch: int, *, rows_in: int = 0, rows_out: int = 0, dead_letters: int = 0
    ) -> None:
        counts = self.by_epoch.setdefault(epoch, [0, 0, 0])
        counts[0] += rows_in
        counts[1] += rows_out
        counts[2] += dead_letters

    def forget_through(self, epoch: Any) -> None:
        """Epochs up to ``epoch`` (a checkpoint id, or None) are committed: drop them."""
        if epoch is None:
            return
        last = int(epoch)
        for done in [e for e in self.by_epoch if e <= last]:
            del self.by_epoch[done]

    def uncommitted(self, last_committed: Any) -> tuple[int, int, int]:
        """(rows in, rows out, dead letters) of the epochs after ``last_committed``."""
        last = int(last_committed) if last_committed is not None else 0
        totals = [0, 0, 0]
        for epoch, counts in self.by_epoch.items():
            if epoch > last:
                for i in range(3):
                    totals[i] += counts[i]
        return totals[0], totals[1], totals[2]
