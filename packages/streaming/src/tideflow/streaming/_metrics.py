"""What a job reports: per-stage metrics and the job's result object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tideflow.core.observability import CheckpointEvent, ScaleEvent

__all__ = ["JobResult", "StageMetrics"]

_GAP_S = 0.25  # back-pressure notes further apart than this are separate episodes


@dataclass(kw_only=True)
class StageMetrics:
    """Counters of one stage, updated while the job runs."""

    name: str = ""
    """The stage's name."""
    batches: int = 0
    """Batches the stage finished."""
    rows_in: int = 0
    """Rows it received."""
    rows_out: int = 0
    """Rows it emitted."""
    dead_letters: int = 0
    """Rows it sent to the dead-letter output."""
    busy_s: float = 0.0
    """Seconds its actors spent in the user function."""
    first_start: float | None = None
    """Wall-clock time the first batch started."""
    last_end: float | None = None
    """Wall-clock time the last batch ended."""
    queue_depth: int = 0
    """Batches waiting for the stage now."""
    backpressure_s: float = 0.0
    """Seconds the stage had work it could not send on because downstream was full."""
    backpressure_reasons: dict[str, float] = field(default_factory=dict)
    """Back-pressured seconds by reason (which downstream queue or limit)."""
    scale_events: list[ScaleEvent] = field(default_factory=list)
    """Resizes of the stage's pool."""
    retries: int = 0
    """Batches sent again after their actor died (or, with retries on errors, raised)."""
    actor_deaths: int = 0
    """Actors of the stage that died (killed, crashed, or failed to start) and were replaced."""
    actors: int = 0
    """Actors of the stage taking work now (not those leaving a draining node), sampled
    while the job runs; compare with ``actors_min`` after a lost or drained node."""
    actors_min: int = 0
    """The least number of actors the stage keeps (its pool's minimum)."""
    actors_max: int = 0
    """The most actors the stage may have (its pool's maximum)."""
    actor_bundle: dict[str, float] = field(default_factory=dict)
    """What each of its actors reserves, as a Ray resource bundle (``CPU``, ``GPU``,
    custom names): what one more actor would ask a cluster autoscaler for."""
    _last_note: float | None = None

    def observe(self, meta: dict[str, Any]) -> None:
        self.batches += 1
        self.rows_in += meta["rows_in"]
        self.rows_out += meta["rows_out"]
        self.dead_letters += meta["dead"]
        self.busy_s += meta["end"] - meta["start"]
        self.first_start = (
            meta["start"] if self.first_start is None else min(self.first_start, meta["start"])
        )
        self.last_end = meta["end"] if self.last_end is None else max(self.last_end, meta["end"])

    def note_backpressure(self, now: float, reason: str) -> None:
        if self._last_note is not None and now - self._last_note <= _GAP_S:
            spent = now - self._last_note
            self.backpressure_s += spent
            self.backpressure_reasons[reason] = self.backpressure_reasons.get(reason, 0.0) + spent
        self._last_note = now

    @property
    def busy_fraction(self) -> float:
        """Busy time ÷ the span from the first batch's start to the last one's end.

        For a one-slot stage (one actor, one batch at a time) this is its utilization; a
        pool of n actors can reach up to n.
        """
        if self.first_start is None or self.last_end is None or self.last_end <= self.first_start:
            return 0.0
        return self.busy_s / (self.last_end - self.first_start)

    @property
    def backpressure_reason(self) -> str | None:
        """The reason this stage was held back longest, if it was."""
        if not self.backpressure_reasons:
            return None
        return max(self.backpressure_reasons, key=lambda k: self.backpressure_reasons[k])


@dataclass(kw_only=True)
class JobResult:
    """What :meth:`Pipeline.run` returns."""

    job_id: str
    """The job's id."""
    run: int = 1
    """Which run of this job id this was (2 and more: resumed)."""
    rows_in: int = 0
    """Rows read from the source in this run."""
    rows_out: int = 0
    """Rows written to the sink in this run."""
    dead_letters: int = 0
    """Rows sent to the dead-letter output in this run."""
    wall_s: float = 0.0
    """Seconds from start to the last commit."""
    stages: dict[str, StageMetrics] = field(default_factory=dict)
    """Metrics per stage, by name."""
    source: StageMetrics = field(default_factory=lambda: StageMetrics(name="source"))
    """The source's back-pressure (reads held back because the first queue was full)."""
    checkpoints: list[CheckpointEvent] = field(default_factory=list)
    """Checkpoints completed in this run (``duration_s``: from the epoch's start to durable,
    so it includes the epoch's processing, not only the save)."""
    committed_epochs: list[int] = field(default_factory=list)
    """Epochs the sink committed in this run."""
    restored_from: int | None = None
    """The checkpoint this run resumed from, if any."""
    splits_total: int = 0
    """Splits of the source (files' batch groups, partitions) known to this run."""
    splits_finished: int = 0
    """Splits read to their end (including those finished in earlier runs)."""
    stopped: bool = False
    """The run was stopped (``Job.stop()``, or Ctrl-C in ``run()``) before its source
    ended: what was read is committed, and a rerun with the same job id goes on from there."""
    restarts: int = 0
    """Times this run started again from its last complete checkpoint: after a part of the
    job was lost (an actor, or batches on a node that died; see ``max_restarts``), or to
    move its I/O, writers or keyed stages off a node being drained. The row
    counts above count a replayed row once; stage metrics count the work done, replays
    included."""
    peak_batches_held: int = 0
    """Most batches the job held at once (reads, stage queues and calls, writes): what it
    keeps in Ray's object store. Bounded by the queue limits, whatever the input's size."""

    @property
    def only_dead_letters(self) -> bool:
        """Whether this run read input but wrote no row to the sink and sent at least one to
        the dead-letter output: every record it read failed (or the few that did not were
        filtered out). Records the source itself could not decode (a corrupt video, a
        malformed message) count as read. Such a run ends without an error, since a bad
        record is data, not a crash: the engine logs a ``job.all_dead_lettered`` warning
        naming the dead-letter output, and a command line should exit non-zero
        (``video-search ingest`` exits 1)."""
        return self.rows_out == 0 and self.dead_letters > 0

    @property
    def rows_per_s(self) -> float:
        return self.rows_out / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict[str, Any]:
        """The headline figures, flat, for logs and tables."""
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dead_letters": self.dead_letters,
            "wall_s": round(self.wall_s, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "checkpoints": len(self.checkpoints),
            "restored_from": self.restored_from,
            "restarts": self.restarts,
            "peak_batches_held": self.peak_batches_held,
            "stopped": self.stopped,
        }
