"""What runs: the driver-side executor of one run of a job.

The executor holds the run's lease on the job id, its result and its options, and runs
:class:`~._execution.attempt.Attempt`\\ s: the first from the job's last checkpoint, and —
when a part of the job was lost (the node that held the I/O actor, a sink writer, a keyed
stage's partition or batches in flight died) — another from the last complete checkpoint,
with actors created anew wherever Ray has room (:mod:`._execution.recovery`), at most
``max_restarts`` times. Replayed rows are counted once: an attempt's counts of the epochs it
did not commit are taken back before the next one replays them.

Layers below (see ``packages/streaming/ARCHITECTURE.md``): the attempt's loop
(:mod:`._execution.attempt`), its steps as plain functions (:mod:`._execution.steps`), the
checkpoint side (:mod:`._execution.checkpointing`), the physical operators
(:mod:`._operators`) that the planner (:mod:`._planner`) makes from the plan's stages.
"""

from __future__ import annotations

import time
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.streaming._acks import check_ack_mode
from tideflow.streaming._execution import lifecycle
from tideflow.streaming._execution.attempt import Attempt
from tideflow.streaming._execution.options import RunOptions
from tideflow.streaming._execution.recovery import lost_part
from tideflow.streaming._jobdir import JobDirectory
from tideflow.streaming._metrics import JobResult, StageMetrics
from tideflow.streaming._plan import Plan, split_fused
from tideflow.streaming.connectors._base import JobContext, Sink
from tideflow.streaming.errors import JobAbortedError

__all__ = ["Executor"]

_RESTART_DELAY_S = 1.0
"""Wait before the first restart after a loss (doubling after each, at most 10 s), as
Flink's fixed-delay restart strategy does: a node that died is then more likely known dead
to Ray, which would otherwise place the new actors on it again."""


class Executor:
    """Runs a :class:`Plan` once, to the end of a bounded source or until stopped."""

    def __init__(self, plan: Plan, *, job_id: str, options: RunOptions | None = None) -> None:
        if plan.sink is None:
            raise JobAbortedError("the pipeline has no sink: end it with .write(sink)")
        self.plan = plan
        self.options = options if options is not None else RunOptions()
        checkpoint = self.options.checkpoint
        if checkpoint is not None and checkpoint.mode == "ack":
            check_ack_mode(plan)
        split_fused(plan)  # a fused stage out of place: refused before anything starts
        self.jobdir = JobDirectory(job_id, checkpoint)
        self.dead_sink: Sink = (
            self.options.dead_letter
            if self.options.dead_letter is not None
            else self.jobdir.default_dead_letter()
        )
        self._stop = False
        self._attempt: Attempt | None = None
        self._stage_metrics: dict[str, StageMetrics] = {}  # counted across attempts
        self._lost: tuple[BaseException, str] | None = None  # a lease lost between attempts
        self._losses = 0  # restarts after a loss (moves off draining nodes do not count)
        self._earlier_checkpoints: list[Any] = []  # completed by attempts that failed later
        # Last, so that nothing can fail with the lease taken: refused here (before anything
        # of the job is read) while another run of the job id is live.
        run = self.jobdir.start_run(on_lease_lost=self._lease_lost)
        self.ctx = JobContext(job_id=self.jobdir.output_id, run=run, job_uri=self.jobdir.uri)
        self.result = JobResult(job_id=job_id, run=run)
        self._log = get_logger("tideflow.streaming.executor", job_id=job_id, run=run)

    # -- life cycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the epoch in flight, take a final checkpoint and return (thread-safe)."""
        self._stop = True
        if self._attempt is not None:
            self._attempt.stop()

    def _lease_lost(self, error: BaseException) -> None:
        """Another run took the job's lease (this one missed its heartbeats for a TTL)."""
        self._lost = (error, "another run took over the job's lease")
        if self._attempt is not None:
            self._attempt.fail(*self._lost)

    def run(self) -> JobResult:
        try:
            return self._run()
        finally:
            self.jobdir.end_run()  # the lease goes back however the run ends
            connectors = {
                "source": self.plan.source,
                "sink": self.plan.sink,
                "dead_letter": self.dead_sink,
            }
            lifecycle.close_connectors(connectors, self._log)

    def _run(self) -> JobResult:
        started = time.monotonic()
        pools: dict[str, Any] = {}  # stage pools an attempt hands on to the next
        try:
            return self._attempts(started, pools)
        finally:
            for pool in pools.values():  # handed on, and no attempt came to take them
                pool.shutdown(wait=False, cancel_pending=True, timeout=5)

    def _attempts(self, started: float, pools: dict[str, Any]) -> JobResult:
        while True:
            attempt = self._new_attempt(pools)
            try:
                attempt.run(started, self._stage_metrics)
            except BaseException as error:
                if not self._restart_after(attempt, error):
                    raise
                continue
            if not (attempt.migrating and not self._stop and self._lost is None):
                break
            # A node the job's stateful actors ran on is draining: the attempt committed what
            # it read; the next one goes on from there, on other nodes.
            self.result.stopped = False
            self.result.restarts += 1
            self._earlier_checkpoints += _completed(attempt)
            self._log.warning("job.moved", restart=self.result.restarts)
        self.result.wall_s = time.monotonic() - started
        self.result.checkpoints = self._earlier_checkpoints + _completed(attempt)
        self._log.info("job.finished", **self.result.summary())
        if self.result.only_dead_letters:  # ended "successfully" with nothing written
            self._log.warning(
                "job.all_dead_lettered",
                rows_in=self.result.rows_in,
                dead_letters=self.result.dead_letters,
                dead_letter_output=repr(self.dead_sink),
            )
        return self.result

    def _new_attempt(self, pools: dict[str, Any]) -> Attempt:
        attempt = Attempt(
            self.plan,
            ctx=self.ctx,
            result=self.result,
            options=self.options,
            checkpoints_uri=self.jobdir.checkpoints_uri,
            dead_sink=self.dead_sink,
            attempt=self.result.restarts,
            log=self._log,
            pools=pools,  # the same dict: the attempt takes pools from it and hands on
        )
        self._attempt = attempt
        if self._stop:
            attempt.stop()
        if self._lost is not None:
            attempt.fail(*self._lost)
        return attempt

    def _restart_after(self, attempt: Attempt, error: BaseException) -> bool:
        """After ``attempt`` failed with ``error`` (its actors are stopped): whether a next
        attempt starts from the last complete checkpoint. It does when a part of the job
        was lost and restarts are left; the counts of the epochs it did not commit are
        taken back (the next attempt replays them)."""
        lost = lost_part(error)
        if lost is None or self._lost is not None:
            return False
        restarts, allowed = self._losses, self.options.max_restarts
        if restarts >= allowed:
            message = (
                f"job {self.ctx.job_id!r} lost a part ({lost.kind}: {lost.detail}) after "
                f"{restarts} restart(s) from its last checkpoint (max_restarts={allowed}); "
                "run it again with the same job_id to resume from its last complete checkpoint"
            )
            raise JobAbortedError(message) from error
        committed = attempt.coordinator.last_completed
        rows_in, rows_out, dead = attempt.counts.uncommitted(committed)
        self.result.rows_in -= rows_in
        self.result.rows_out -= rows_out
        self.result.dead_letters -= dead
        self.result.restarts += 1
        self._losses += 1
        self._earlier_checkpoints += _completed(attempt)
        delay = min(_RESTART_DELAY_S * 2 ** (self._losses - 1), 10.0)
        self._log.warning(
            "job.restarting",
            delay_s=delay,
            lost=lost.kind,
            detail=lost.detail,
            restart=self.result.restarts,
            max_restarts=allowed,
            last_checkpoint=int(committed) if committed is not None else None,
            rows_replayed=rows_in,
        )
        time.sleep(delay)  # let Ray notice a dead node before the new actors are placed
        return True


def _completed(attempt: Attempt) -> list[Any]:
    return [e for e in attempt.coordinator.events if e.status == "completed"]
