"""The checkpoint side of a run: the coordinator, the committer thread, the states that
actors send back (stage snapshots, sink pre-commits), timeouts, and what stops the run.

Acknowledgements — and so the saves, sink commits, completion callbacks and position
commits they complete — run on one committer thread, in order, so that a slow commit never
stalls reading (issue 18). A failure on that thread, a failed checkpoint or a lost lease is
recorded here and raised on the loop's thread by :meth:`Checkpointing.raise_if_failed`.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from tideflow.core.checkpoint import CheckpointStore, EpochCoordinator
from tideflow.streaming._execution import lifecycle, steps
from tideflow.streaming._execution.commit_modes import CommitMode
from tideflow.streaming._execution.committer import Committer, PositionCommitter
from tideflow.streaming._plan import CheckpointConfig
from tideflow.streaming.connectors._base import JobContext, Sink
from tideflow.streaming.errors import JobAbortedError

__all__ = ["Checkpointing"]

_TIMEOUT_CHECK_S = 0.1  # how often checkpoint timeouts are checked


class Checkpointing:
    """One attempt's checkpoints. ``mode`` is set once the commit mode exists (it needs
    :meth:`ack` and :attr:`coordinator`); ``wake`` wakes the loop."""

    def __init__(
        self,
        *,
        checkpoints_uri: str,
        config: CheckpointConfig | None,
        ctx: JobContext,
        sinks: tuple[Sink, Sink],
        commit_positions: Callable[[dict[str, Any]], None],
        wake: Callable[[], None],
        log: Any,
    ) -> None:
        self.store = CheckpointStore(checkpoints_uri, retain=config.retain if config else 2)
        self.coordinator = EpochCoordinator(
            store=self.store,
            timeout_s=config.timeout_s if config else None,
            halt_on_commit_error=True,  # no checkpoint may skip an epoch whose commit failed
        )
        self.mode: CommitMode | None = None
        self.ctx = ctx
        self._sinks = sinks
        self._wake = wake
        self._log = log
        self.positions = PositionCommitter(commit_positions, log)
        self.committer: Committer | None = None  # started with the loop (start())
        # Refs of pre-commits and snapshots -> (epoch, participant, part index, parts).
        self.acks: dict[Any, tuple[int, str, int, int]] = {}
        self._ack_parts: dict[tuple[int, str], dict[int, Any]] = {}
        self._fatal: BaseException | None = None
        self._fatal_reason = ""
        self._committer_error: BaseException | None = None
        self._next_timeout_check = 0.0
        self.coordinator.on_complete(self.commit)
        self.coordinator.on_abort(self._abort)

    def start(self) -> None:
        self.committer = Committer(on_error=self._committer_failed)

    def shutdown(self, *, wait: bool) -> None:
        """Stop the committer (on an error: after the commit running now); with ``wait``, let
        the final positions reach the source (bounded)."""
        if self.committer is not None:
            self.committer.shutdown(wait=wait, timeout=None if wait else 30.0)
        if wait:
            self.positions.wait_idle(timeout=30.0)

    def wait_idle(self) -> None:
        """Wait for the commits handed over so far."""
        assert self.committer is not None
        self.committer.wait_idle()

    # -- states sent back by actors ------------------------------------------------------

    def track(self, ref: Any, epoch: int, participant: str, part: int, parts: int) -> None:
        """``ref`` will hold part ``part`` of ``parts`` of ``participant``'s state of
        ``epoch``."""
        self.acks[ref] = (epoch, participant, part, parts)

    def collect(self, ready: list[Any]) -> None:
        """Gather the states in ``ready`` (refs of :attr:`acks` that are done); a
        participant's last part hands its whole state to the coordinator."""
        import ray

        for ref in ready:
            epoch, participant, index, count = self.acks.pop(ref)
            key = (epoch, participant)
            values = steps.gather_part(self._ack_parts, key, index, count, ray.get(ref))
            if values is not None:  # a stage's partitions, or a sink's pre-commit
                stage = participant.startswith("stage:")
                state = pickle.dumps(values) if stage else {"precommits": values}
                self.ack(epoch, participant, state)

    def ack(self, epoch: int, participant: str, state: Any) -> None:
        """Hand ``participant``'s state of ``epoch`` to the coordinator, on the committer
        thread: the ack that completes an epoch saves it and commits it there."""
        assert self.committer is not None
        self.committer.submit(partial(self.coordinator.ack, epoch, participant, state))

    def check_timeouts(self) -> None:
        """Fail epochs past their timeout, on the committer thread (where the sinks are
        committed, so that an abort never runs beside a commit), when it is idle (checks do
        not pile up behind a slow commit)."""
        assert self.committer is not None
        now = time.monotonic()
        # At most every 0.1 s: timeouts are seconds, and a hand-off to the committer on every
        # turn of the loop (~2 ms) costs the driver's CPU (measured: first rows ~0.4 s later
        # and ~3 % less throughput with checkpoints on 2 cores).
        if now >= self._next_timeout_check and not self.committer.queued:
            self._next_timeout_check = now + _TIMEOUT_CHECK_S
            self.committer.submit(self.coordinator.check_timeouts)

    # -- what stops the run ----------------------------------------------------------------

    def fail(self, error: BaseException, reason: str) -> None:
        """Stop the run with ``error`` (the first failure wins); thread-safe."""
        if self._fatal is None:
            self._fatal, self._fatal_reason = error, reason
        self._wake()

    def raise_if_failed(self) -> None:
        if self._fatal is not None:
            message = (
                f"job {self.ctx.job_id!r} stopped: {self._fatal_reason}; run it again with the "
                "same job_id to resume from its last complete checkpoint"
            )
            raise JobAbortedError(message) from self._fatal
        if self._committer_error is not None:
            raise self._committer_error  # as it was raised in the committer

    def _committer_failed(self, error: BaseException) -> None:
        """An ack raised on the committer thread: the job stops with that error."""
        self._committer_error = error
        self._wake()

    def _abort(self, epoch: Any, reason: str) -> None:
        """A checkpoint failed (timeout, or its state could not be saved): its epoch's output
        would be skipped by the next one, so the job stops; a rerun resumes from the last
        complete checkpoint and replays the epoch. Staged output of the epoch is dropped."""
        lifecycle.abort_staged(self._sinks, self.ctx, int(epoch), self._log)
        error = JobAbortedError(f"checkpoint {int(epoch)} failed: {reason}")
        self.fail(error, f"checkpoint {int(epoch)} failed")  # on the committer thread

    def commit(self, epoch: Any, states: Any) -> None:
        """Make ``epoch``'s output final (its checkpoint is durable); also called on a
        restore, since a crash may have come between the save and the commit."""
        try:
            if self._fatal is not None:
                raise JobAbortedError(f"epoch {epoch} not committed: an earlier commit failed")
            assert self.mode is not None
            self.mode.commit(int(epoch), states)
        except Exception as error:
            # Later epochs must not be committed past this one: stop the job; a rerun
            # re-commits from the checkpoint (commits are idempotent).
            self.fail(error, f"committing epoch {epoch} failed")
            raise
