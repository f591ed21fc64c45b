"""The executor's mutable state, as plain dataclasses that the steps take and update."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tideflow.streaming._acks import Origin
from tideflow.streaming.connectors._base import Split

__all__ = ["Batch", "LoopState", "SplitState"]


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
