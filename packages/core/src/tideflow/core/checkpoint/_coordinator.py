"""The epoch coordinator: an epoch completes when every participant acknowledged it."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tideflow.core.checkpoint._ids import CheckpointId
from tideflow.core.checkpoint._store import Checkpoint, CheckpointStore
from tideflow.core.clock import Clock, MonotonicClock
from tideflow.core.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    EpochAbortedError,
)
from tideflow.core.observability import CheckpointEvent, get_logger, log_event
from tideflow.core.uri import redact

__all__ = ["AbortCallback", "CompleteCallback", "EpochCoordinator"]

CompleteCallback = Callable[[CheckpointId, Mapping[str, Any]], None]
"""``callback(epoch, states)``: the epoch's checkpoint is durable; ``states`` maps each
participant to the state it acknowledged. Two-phase sinks commit here."""
AbortCallback = Callable[[CheckpointId, str], None]
"""``callback(epoch, reason)``: the epoch failed; two-phase sinks discard its pre-commit."""

_FIRST = CheckpointId(1)
_FINISHED_MEMORY = 1024  # how many finished epochs are remembered for error messages


@dataclass(kw_only=True)
class _Epoch:
    id: CheckpointId
    participants: frozenset[str]
    started_at: float
    states: dict[str, Any] = field(default_factory=dict)
    committing: bool = False

    @property
    def ready(self) -> bool:
        return not self.committing and len(self.states) == len(self.participants)


class EpochCoordinator:
    """Tracks epochs until every participant (source, stage, sink) acknowledged them.

    Participants :meth:`register` once; each epoch from :meth:`begin_epoch` waits for an
    :meth:`ack` (with that participant's state) from every participant registered when it
    began. Acks may come in any order, across participants and epochs. Epochs complete
    strictly in order: once an epoch is fully acknowledged and every earlier epoch has
    completed or failed, its states are saved to the store (one object per participant),
    it becomes :attr:`last_completed`, and the :meth:`on_complete` callbacks run — always
    in increasing epoch order. :meth:`abort`, :meth:`check_timeouts` (epochs older than
    ``timeout_s`` on ``clock``) and a failed save fail an epoch: :meth:`on_abort` callbacks
    run, and the store and the last complete checkpoint are untouched. A later epoch may
    still complete after an earlier one failed: every checkpoint is a full snapshot.

    Thread-safe. Whichever thread makes an epoch ready commits it (the save and the
    callbacks run without the state lock held, so other threads may keep acking); if
    another thread is committing already, that thread commits it. A callback that raises
    is logged and does not stop the others. Callbacks may call back into the coordinator.

    Epoch ids start at 1. When the store may hold checkpoints, call :meth:`restore` before
    the first :meth:`begin_epoch`, so new epochs continue after the latest one.
    """

    def __init__(
        self,
        *,
        store: CheckpointStore | None,
        timeout_s: float | None = 60,
        clock: Clock | None = None,
        max_events: int = 1024,
        halt_on_commit_error: bool = False,
    ) -> None:
        if timeout_s is not None and not (
            isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0
        ):
            raise ConfigError(f"EpochCoordinator.timeout_s must be None or > 0; got {timeout_s!r}")
        if max_events < 1:
            raise ConfigError(f"EpochCoordinator.max_events must be ≥ 1; got {max_events!r}")
        self._store = store
        self._timeout_s = timeout_s
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._lock = threading.Lock()  # guards every field below
        self._commit_lock = threading.Lock()  # held by the one thread committing epochs
        self._participants: dict[str, None] = {}
        self._pending: dict[CheckpointId, _Epoch] = {}
        self._finished: OrderedDict[CheckpointId, str | None] = OrderedDict()  # id → why failed
        self._last_started: CheckpointId | None = None
        self._last_completed: CheckpointId | None = None
        self._events: deque[CheckpointEvent] = deque(maxlen=max_events)
        self._on_complete: list[CompleteCallback] = []
        self._on_abort: list[AbortCallback] = []
        # When an on_complete callback is the sink's commit, a later checkpoint must not
        # become durable after it failed: a restore would resume past an epoch never
        # committed. Halted, the coordinator completes nothing more.
        self._halt_on_commit_error = halt_on_commit_error
        self._halted = False
        self._log = get_logger(
            "tideflow.checkpoint.coordinator", store=store.uri if store is not None else None
        )

    # -- set-up ----------------------------------------------------------------------------

    def register(self, participant: str) -> None:
        """Add a participant; it takes part in the epochs that begin from now on.

        Names are non-empty, without ``/`` (each names a state object in the store), and
        unique: registering a name twice raises :class:`ConfigError`.
        """
        if not isinstance(participant, str) or not participant or "/" in participant:
            raise ConfigError(
                f"participant names must be non-empty strings without '/'; got {participant!r}"
            )
        with self._lock:
            if participant in self._participants:
                raise ConfigError(f"participant {participant!r} is already registered")
            self._participants[participant] = None

    def on_complete(self, callback: CompleteCallback) -> CompleteCallback:
        """Call ``callback(epoch, states)`` after each epoch completes; returns it."""
        with self._lock:
            self._on_complete.append(callback)
        return callback

    def on_abort(self, callback: AbortCallback) -> AbortCallback:
        """Call ``callback(epoch, reason)`` after each epoch fails; returns it."""
        with self._lock:
            self._on_abort.append(callback)
        return callback

    def restore(self) -> Checkpoint | None:
        """Load the latest complete checkpoint; later epochs continue after its id.

        Removes every partial checkpoint first (``cleanup_partial(all=True)``: this
        coordinator is the store's only writer and no epoch may be in progress). Returns
        None when there is no store or no complete checkpoint.
        """
        with self._lock:
            if self._pending:
                raise CheckpointError(
                    f"restore() needs no epoch in progress; pending: "
                    f"{[e.value for e in self._pending]}"
                )
        if self._store is None:
            return None
        self._store.cleanup_partial(all=True)
        try:
            checkpoint = self._store.load()
        except CheckpointNotFoundError:
            return None
        cid = checkpoint.checkpoint_id
        with self._lock:
            self._last_completed = cid
            if self._last_started is None or self._last_started < cid:
                self._last_started = cid
        self._log.info("checkpoint.restored", checkpoint_id=cid.value)
        return checkpoint

    # -- epochs ----------------------------------------------------------------------------

    def begin_epoch(self) -> CheckpointId:
        """Start the next epoch (after the last started or restored one) and return its id."""
        with self._lock:
            if not self._participants:
                raise CheckpointError("begin_epoch(): no participant is registered")
            cid = self._last_started.next() if self._last_started is not None else _FIRST
            now = self._clock.now()
            self._pending[cid] = _Epoch(
                id=cid, participants=frozenset(self._participants), started_at=now
            )
            self._last_started = cid
            event = self._record(
                CheckpointEvent(time=now, checkpoint_id=cid.value, status="started")
            )
        log_event(self._log, event, level="debug")
        return cid

    def ack(self, epoch: int | CheckpointId, participant: str, state: Any) -> None:
        """Record ``participant``'s state for ``epoch``; commit what became ready.

        Raises :class:`CheckpointError` for an unknown participant, one that joined after
        the epoch began, a second ack, an epoch never started or already completed, and
        :class:`EpochAbortedError` for an epoch that failed (discard its work).
        """
        cid = CheckpointId.of(epoch)
        with self._lock:
            if participant not in self._participants:
                raise CheckpointError(
                    f"ack from unknown participant {participant!r}; "
                    f"registered: {list(self._participants)}"
                )
            ep = self._pending.get(cid)
            if ep is None:
                raise self._not_pending(cid)
            if participant not in ep.participants:
                raise CheckpointError(
                    f"participant {participant!r} registered after epoch "
                    f"{cid} began; it takes part from the next epoch on"
                )
            if participant in ep.states:
                raise CheckpointError(
                    f"participant {participant!r} already acknowledged epoch {cid}"
                )
            ep.states[participant] = state
        self._drain()

    def abort(self, epoch: int | CheckpointId, reason: str) -> bool:
        """Fail a pending epoch. Returns False if it had failed already.

        Raises :class:`CheckpointError` for an epoch never started, already completed or
        being committed right now (its save has begun).
        """
        cid = CheckpointId.of(epoch)
        with self._lock:
            ep = self._pending.get(cid)
            if ep is None:
                if self._finished.get(cid) is not None:
                    return False
                raise self._not_pending(cid)
            if ep.committing:
                raise CheckpointError(f"epoch {cid} is being committed and cannot be aborted")
            failed = self._fail_locked([cid], reason)
            callbacks = list(self._on_abort)
        self._after_fail(failed, callbacks)
        return True

    def check_timeouts(self) -> list[CheckpointId]:
        """Fail the pending epochs older than ``timeout_s``; return their ids."""
        if self._timeout_s is None:
            return []
        with self._lock:
            now = self._clock.now()
            expired = [
                ep.id
                for ep in self._pending.values()
                if not ep.committing and now - ep.started_at > self._timeout_s
            ]
            failed = self._fail_locked(expired, f"timed out after {self._timeout_s:g} s")
            callbacks = list(self._on_abort)
        self._after_fail(failed, callbacks)
        return [CheckpointId(e.checkpoint_id) for e in failed]

    # -- state -----------------------------------------------------------------------------

    @property
    def participants(self) -> tuple[str, ...]:
        """The registered participants, in registration order."""
        with self._lock:
            return tuple(self._participants)

    @property
    def last_completed(self) -> CheckpointId | None:
        """The latest completed (or restored) epoch."""
        with self._lock:
            return self._last_completed

    @property
    def pending(self) -> tuple[CheckpointId, ...]:
        """The epochs started and not yet completed or failed, in order."""
        with self._lock:
            return tuple(self._pending)

    @property
    def events(self) -> tuple[CheckpointEvent, ...]:
        """The latest ``max_events`` epoch events (started, completed, aborted), oldest first."""
        with self._lock:
            return tuple(self._events)

    # -- internals -------------------------------------------------------------------------

    def _not_pending(self, cid: CheckpointId) -> CheckpointError:
        if cid in self._finished:
            why = self._finished[cid]
            if why is None:
                return CheckpointError(f"epoch {cid} is already completed")
            return EpochAbortedError(f"epoch {cid} was aborted: {why}")
        if self._last_started is None or cid > self._last_started:
            return CheckpointError(
                f"epoch {cid} was not started; the latest started epoch is {self._last_started}"
            )
        return CheckpointError(f"epoch {cid} is already finished (completed or failed)")

    def _record(self, event: CheckpointEvent) -> CheckpointEvent:
        """Keep ``event`` (the state lock is held)."""
        self._events.append(event)
        if event.status != "started":
            self._finished[CheckpointId(event.checkpoint_id)] = event.reason
            while len(self._finished) > _FINISHED_MEMORY:
                self._finished.popitem(last=False)
        return event

    def _fail_locked(self, ids: list[CheckpointId], reason: str) -> list[CheckpointEvent]:
        """Fail pending epochs that are not committing (the state lock is held)."""
        now = self._clock.now()
        failed = []
        for cid in ids:
            ep = self._pending.pop(cid)
            failed.append(
                self._record(
                    CheckpointEvent(
                        time=now,
                        checkpoint_id=cid.value,
                        status="aborted",
                        duration_s=now - ep.started_at,
                        reason=reason,
                    )
                )
            )
        return failed

    def _after_fail(self, failed: list[CheckpointEvent], callbacks: list[AbortCallback]) -> None:
        """Report failed epochs, then commit later epochs that may have waited for them."""
        if not failed:
            return
        for event in failed:
            log_event(self._log, event, level="warning")
            self._call(callbacks, CheckpointId(event.checkpoint_id), event.reason or "")
        self._drain()

    def _drain(self) -> None:
        """Commit ready epochs in order, unless another thread is doing it."""
        while True:
            if not self._commit_lock.acquire(blocking=False):
                return  # the committing thread re-checks after it releases the lock
            try:
                self._commit_ready()
            finally:
                self._commit_lock.release()
            with self._lock:
                first = next(iter(self._pending.values()), None)
                if first is None or not first.ready or self._halted:
                    return

    def _commit_ready(self) -> None:
        while True:
            with self._lock:
                ep = next(iter(self._pending.values()), None)
                if ep is None or not ep.ready or self._halted:
                    return
                ep.committing = True
                states = {p: ep.states[p] for p in sorted(ep.states)}
            save_started = self._clock.now()
            error: Exception | None = None
            if self._store is not None:
                try:
                    self._store.save(ep.id, states, metadata={"participants": list(states)})
                except Exception as e:
                    error = e
            with self._lock:
                now = self._clock.now()
                del self._pending[ep.id]
                if error is None:
                    self._last_completed = ep.id
                    event = CheckpointEvent(
                        time=now,
                        checkpoint_id=ep.id.value,
                        status="completed",
                        duration_s=now - ep.started_at,
                        save_s=now - save_started,
                    )
                else:
                    event = CheckpointEvent(
                        time=now,
                        checkpoint_id=ep.id.value,
                        status="aborted",
                        duration_s=now - ep.started_at,
                        save_s=now - save_started,
                        reason=f"saving its state failed: {redact(str(error))}",
                    )
                self._record(event)
                on_complete, on_abort = list(self._on_complete), list(self._on_abort)
            log_event(
                self._log,
                event,
                level="info" if error is None else "warning",
            )
            if error is None:
                if not self._call(on_complete, ep.id, states) and self._halt_on_commit_error:
                    with self._lock:
                        self._halted = True
                    self._log.error("checkpoint.halted", after=ep.id.value)
            else:
                self._call(on_abort, ep.id, event.reason or "")

    def _call(
        self, callbacks: Sequence[Callable[[CheckpointId, Any], None]], cid: CheckpointId, arg: Any
    ) -> bool:
        """Run every callback; False if one raised (it is logged)."""
        ok = True
        for callback in callbacks:
            try:
                callback(cid, arg)
            except Exception as e:
                ok = False
                self._log.error(
                    "checkpoint.callback_failed",
                    checkpoint_id=cid.value,
                    callback=getattr(callback, "__qualname__", repr(callback)),
                    error=repr(e),
                )
        return ok
