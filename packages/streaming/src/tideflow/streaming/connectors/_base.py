"""The contracts between the engine and its connectors.

A **source** says how it is partitioned and how a partition resumes (Bytewax ``inputs``
style): :meth:`Source.discover` lists its splits (stable ids), :meth:`Source.open` builds a
reader for one split from its resume state, and :meth:`SplitReader.snapshot` returns what
is needed to resume *after the last batch returned*. Nothing is built in a constructor that
a resume would have to undo: sources are plain, picklable descriptions; readers are made in
the engine's reader actors.

A **sink** is two-phase (Flink's ``TwoPhaseCommitSinkFunction``): writers stage each epoch's
data (:meth:`SinkWriter.write`), :meth:`SinkWriter.precommit` flushes an epoch and returns
what a commit needs (small JSON: staged paths, transaction ids); once the checkpoint that
holds those pre-commit states is durable, the engine calls :meth:`Sink.commit` on the
driver. A commit must be idempotent by ``(job_id, epoch)``: after a crash the engine commits
again every pre-committed epoch of the restored checkpoint, and :meth:`Sink.recover` removes
what was staged for epochs after it, so a replay never writes twice.

**Record-level ACK mode** (``CheckpointConfig(mode="ack")``) is for sources whose records
carry per-split offsets (Kafka): a source names its offset column
(:attr:`Source.offset_column`); the engine acknowledges a record once everything derived from
it was written (or dead-lettered), keeps the contiguous prefix of acknowledged offsets per
split, and checkpoints ``position_after(split, prefix)`` instead of waiting for epoch
barriers. After a checkpoint is saved (either mode) the driver calls
:meth:`Source.commit_positions`, e.g. to commit Kafka offsets to the consumer group.

All states are JSON values (dicts, lists, str, int, float, bool, None).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import pyarrow as pa

from tideflow.streaming.errors import ConfigError

__all__ = [
    "JSON",
    "JobContext",
    "Sink",
    "SinkWriter",
    "Source",
    "Split",
    "SplitReader",
]

JSON = Any
"""A JSON-serialisable value."""


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """What connectors know about the job they run in."""

    job_id: str
    """The job's stable id: the same across reruns (resume) of one job."""
    run: int = 1
    """1 for the first run of this job id, 2 for the first rerun (resume), and so on."""
    job_uri: str = ""
    """The job's directory (under the checkpoint URI) for connector bookkeeping; may be ''."""


@dataclass(frozen=True, kw_only=True)
class Split:
    """One partition of a source: a batch group of files, a Kafka partition, a table range."""

    split_id: str
    """Stable id: the same split has the same id in every run (it keys the resume state)."""
    info: JSON = field(default=None)
    """What the reader needs to open it (file paths, partition number, …)."""
    priority: int = 0
    """Higher is read first when the engine cannot read every split at once (its read
    budget is short); splits of one priority share the budget in turn. Reading order only:
    it says nothing of the rows' order in later queues (see ``priority_column``)."""

    def __post_init__(self) -> None:
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            message = f"Split {self.split_id!r}: priority must be an int; got {self.priority!r}"
            raise ConfigError(message)


class SplitReader(ABC):
    """Reads one split, in order, inside a reader actor."""

    @abstractmethod
    def read(self, max_rows: int) -> pa.Table | None:
        """Return the next batch (at most ``max_rows`` rows, at least 1), or ``None``.

        ``None`` means nothing is available now: the split is finished (see
        :attr:`finished`) or, for an unbounded source, no new data has arrived yet.
        """

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True once a bounded split has returned its last batch (never for unbounded)."""

    @abstractmethod
    def snapshot(self) -> JSON:
        """The state to resume from *after* the last batch :meth:`read` returned."""

    def dead_letters(self) -> list[dict[str, JSON]]:
        """Records that could not be decoded since the last call, taken (the list is then
        cleared). Each is ``{"error": str, "record": JSON}`` where ``record`` names the input
        (for Kafka: topic, partition, offset, key and the raw value); in ACK mode it also
        has ``"offset"`` (int) so that the skipped record is acknowledged. The engine writes
        them to the dead-letter output with stage ``"source"``; the job goes on."""
        return []

    def next_awake(self) -> float | None:
        """When to read this split again, asked after every :meth:`read`: a delay in
        seconds (``0``: at once), or ``None`` for the engine's default (at once after a
        batch, after a short idle back-off after ``None``). Bytewax's ``next_awake``, as a
        delay rather than a time: the reader runs in the I/O actor, the engine's scheduling
        in the driver, each on its own monotonic clock (possibly another host); the driver
        counts the delay from when the read's result reaches it, so a split is never read
        earlier than asked (later by the result's trip). Reads already in flight still
        come: a reader that waits for something should return ``None`` from them cheaply."""
        return None

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release files and connections."""


class Source(ABC):
    """A partitioned, resumable input. Instances are pickled to the engine's actors."""

    name: str = "source"

    offset_column: str | None = None
    """Record-level ACK mode: the column of per-split, increasing integer offsets that every
    batch carries (Kafka's ``offset``). ``None``: the source supports epoch mode only."""

    @property
    @abstractmethod
    def bounded(self) -> bool:
        """True when the input ends (files, a table snapshot); False for streams."""

    @abstractmethod
    def discover(self, ctx: JobContext) -> Sequence[Split]:
        """All splits known now, in a stable order. Unbounded sources are asked again
        periodically and may return new splits (new files, new partitions)."""

    @abstractmethod
    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> SplitReader:
        """A reader for ``split`` resuming after ``state`` (``None``: from its start)."""

    def position_after(self, split: Split, offset: int) -> JSON:
        """ACK mode: the resume state of ``split`` that starts right after ``offset``."""
        message = f"{type(self).__name__} has no per-record offsets: use epoch mode"
        raise NotImplementedError(message)

    def commit_positions(self, ctx: JobContext, positions: Mapping[str, JSON]) -> None:  # noqa: B027
        """Called on the driver once a checkpoint holding ``positions`` (split id → resume
        state) is durable. Optional, best effort and idempotent: a Kafka source commits its
        offsets to the consumer group here so that ordinary tooling sees the lag. An error is
        logged and the job goes on (the checkpoint, not this, is what a rerun resumes from)."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release what the driver side holds (clients used by :meth:`discover` and
        :meth:`commit_positions`). The engine calls it when a job ends; also a context
        manager (``with source: ...``). Idempotent, and the source stays usable: a later
        call connects again."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SinkWriter(ABC):
    """Stages one writer's share of the output, per epoch, inside a sink actor."""

    @abstractmethod
    def write(self, epoch: int, table: pa.Table) -> None:
        """Stage ``table`` as part of ``epoch`` (nothing is visible to readers yet)."""

    @abstractmethod
    def precommit(self, epoch: int) -> JSON:
        """Flush everything staged for ``epoch``; return what :meth:`Sink.commit` needs.

        Called once per epoch, after the epoch's last :meth:`write`, even if it wrote nothing.
        """

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release files and connections (staged data stays staged)."""


class Sink(ABC):
    """A two-phase, idempotent output. Instances are pickled to the engine's actors."""

    name: str = "sink"
    parallel_writes: ClassVar[bool] = False
    """Whether several writers (``writer(ctx, 0)`` … ``writer(ctx, n - 1)``, in different
    processes) may stage one epoch at once, :meth:`commit` taking all their pre-commits
    (``Pipeline.write(sink, writers=n)``)."""

    @abstractmethod
    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        """The writer number ``index`` (0-based) of this job run."""

    @abstractmethod
    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        """Publish ``epoch`` from every writer's pre-commit state; idempotent by (job, epoch).

        Runs on the driver once the checkpoint holding ``precommits`` is durable; it may run
        again for the same epoch after a crash and must then do nothing new.
        """

    def abort(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:  # noqa: B027
        """Discard what was staged for ``epoch`` (its checkpoint failed)."""

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:  # noqa: B027
        """Before a (re)run: remove staged output of epochs after ``last_epoch`` (the
        restored checkpoint's epoch; ``None`` when starting fresh)."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release what the driver side holds (clients used by :meth:`commit`). The engine
        calls it when a job ends; also a context manager. Idempotent, and the sink stays
        usable: a later commit connects again."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
