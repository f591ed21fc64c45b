"""Epoch commits and record-level ACK as two strategies, chosen once per job.

They differ in four places: which participants a checkpoint waits for (and what sinks
recover on a rerun), when the loop takes a barrier and what it records there, what the
commit of a durable epoch does, and when the loop may end.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tideflow.core.checkpoint import EpochCoordinator
from tideflow.streaming._acks import AckLedger
from tideflow.streaming._execution.committer import Completions
from tideflow.streaming._execution.state import LoopState
from tideflow.streaming._execution.steps import source_state
from tideflow.streaming._metrics import JobResult
from tideflow.streaming.connectors._base import JobContext, Sink

__all__ = [
    "DEAD",
    "SINK",
    "SOURCE",
    "AckCommit",
    "BarrierStep",
    "CommitContext",
    "CommitMode",
    "EpochCommit",
    "commit_mode",
]

SOURCE = "source"
SINK = "sink"
DEAD = "dead_letter"


class BarrierStep(enum.Enum):
    """What the loop does about the barrier this round."""

    NONE = "none"
    """Keep reading the epoch."""
    NEXT = "next"
    """Take the barrier of the epoch and begin the next one."""
    LAST = "last"
    """Take the barrier of the epoch and end the loop (the source ended, or a stop)."""


@dataclass(kw_only=True)
class CommitContext:
    """What a commit mode acts on."""

    coordinator: EpochCoordinator
    ack: Callable[[int, str, Any], None]
    """``ack(epoch, participant, state)``: hand a participant's state of an epoch to the
    coordinator (the executor does it on its committer thread)."""
    sink: Sink
    dead_sink: Sink
    job: Callable[[], JobContext]
    """The job's context (known once the run holds the job's lease)."""
    result: Callable[[], JobResult]
    """The run's result, updated as epochs commit."""
    ledger: AckLedger
    completions: Completions
    commit_positions: Callable[[dict[str, Any]], None]
    """Tell the source its durable positions (asynchronously, best effort)."""
    dead_letters: Completions | None = None
    """``on_dead_letter`` with the dead-letter rows whose epoch was committed (None: none)."""


class CommitMode(ABC):
    """How the job's output becomes final."""

    participants: tuple[str, ...]
    """Who acknowledges every epoch, besides stateful stages."""

    def __init__(self, ctx: CommitContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def recover_after(self, last_epoch: int | None) -> int | None:
        """The epoch after which sinks drop staged output on a rerun (None: all of it)."""

    @abstractmethod
    def ack_seq_base(self, run: int, attempt: int) -> int | None:
        """Where the I/O actor of ``attempt`` (from 0) of ``run`` numbers writes that commit
        on their own (None: it does not)."""

    @abstractmethod
    def barrier_step(
        self, *, wanted: bool, ending: bool, reading: bool, unacknowledged: int
    ) -> BarrierStep:
        """This round's barrier, given whether one is ``wanted`` (epoch due), the loop is
        ``ending`` (the source ended or a stop was asked), reads are in flight, and how many
        reads wait for acknowledgement."""

    @abstractmethod
    def barrier(self, state: LoopState, epoch: int) -> None:
        """Take the barrier of ``epoch``: the source's part of its checkpoint."""

    @abstractmethod
    def commit(self, epoch: int, states: Mapping[str, Any]) -> None:
        """``epoch``'s checkpoint is durable: make its output final (raises on failure)."""


class EpochCommit(CommitMode):
    """Exactly once: a barrier is aligned through the pipeline; the sinks pre-commit each
    epoch and commit it once its checkpoint is durable (two-phase)."""

    participants = (SOURCE, SINK, DEAD)

    def recover_after(self, last_epoch: int | None) -> int | None:
        return last_epoch

    def ack_seq_base(self, run: int, attempt: int) -> int | None:
        return None

    def barrier_step(
        self, *, wanted: bool, ending: bool, reading: bool, unacknowledged: int
    ) -> BarrierStep:
        # The barrier: every read of this epoch has returned; record the positions.
        if (wanted or ending) and not reading:
            return BarrierStep.LAST if ending else BarrierStep.NEXT
        return BarrierStep.NONE

    def barrier(self, state: LoopState, epoch: int) -> None:
        self.ctx.ack(epoch, SOURCE, source_state(state.splits))
        state.barriers.append(epoch)

    def commit(self, epoch: int, states: Mapping[str, Any]) -> None:
        ctx, job, result = self.ctx, self.ctx.job(), self.ctx.result()
        sink = states[SINK]["precommits"]
        ctx.sink.commit(job, epoch, [p["state"] for p in sink])
        ctx.dead_sink.commit(job, epoch, [p["state"] for p in states[DEAD]["precommits"]])
        result.committed_epochs.append(epoch)
        result.checkpoints = [e for e in ctx.coordinator.events if e.status == "completed"]
        if ctx.completions.on_complete is not None:
            # After the commit, so a crash in between calls again on restore: at least once.
            ctx.completions.notify([i for p in sink for i in p["ids"]])
        if ctx.dead_letters is not None:
            ctx.dead_letters.notify([r for p in states[DEAD]["precommits"] for r in p["ids"]])
        ctx.commit_positions(states[SOURCE]["positions"])


class AckCommit(CommitMode):
    """Record-level ACK: sinks commit every batch as it is written; a checkpoint is each
    split's acknowledged prefix, taken as is (no barrier to align)."""

    participants = (SOURCE,)

    def recover_after(self, last_epoch: int | None) -> int | None:
        # Every write was committed when it was made: whatever is staged was never
        # acknowledged (its records are read again), so all of it goes.
        return None

    def ack_seq_base(self, run: int, attempt: int) -> int | None:
        # Above every number an earlier run of this job, or an earlier attempt of this run,
        # used: 10**7 writes per attempt, 10**5 attempts (restarts and moves) per run.
        return run * 10**12 + attempt * 10**7

    def barrier_step(
        self, *, wanted: bool, ending: bool, reading: bool, unacknowledged: int
    ) -> BarrierStep:
        if ending and not reading and not unacknowledged:
            return BarrierStep.LAST
        return BarrierStep.NEXT if wanted else BarrierStep.NONE

    def barrier(self, state: LoopState, epoch: int) -> None:
        """Checkpoint each split's acknowledged prefix (not the reader's place)."""
        self.ctx.completions.flush()  # before the positions that make them final
        read = [key for key, s in state.splits.items() if s.finished and not s.reading]
        self.ctx.ack(epoch, SOURCE, self.ctx.ledger.checkpoint(read))

    def commit(self, epoch: int, states: Mapping[str, Any]) -> None:
        self.ctx.result().committed_epochs.append(epoch)
        self.ctx.commit_positions(states[SOURCE]["positions"])


def commit_mode(mode: str, ctx: CommitContext) -> CommitMode:
    """The strategy of ``CheckpointConfig.mode`` (``"epoch"`` without a checkpoint)."""
    modes: dict[str, type[CommitMode]] = {"epoch": EpochCommit, "ack": AckCommit}
    if mode not in modes:
        raise ValueError(f"unknown commit mode {mode!r}; known: {sorted(modes)}")
    return modes[mode](ctx)
