"""The inside of :class:`~tideflow.core.scheduler.ActorPool`: its state and dispatcher thread.

One lock guards all state. Under it the pool only calls non-blocking Ray APIs (``.remote``,
``ray.kill``); ``ray.wait``/``ray.get`` of status markers, future completion (which runs
user callbacks) and scaler calls happen outside it: state changes collect those actions in
a ``todo`` list that runs after the lock is released.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace
from functools import partial
from typing import Any

import ray
from ray.exceptions import RayTaskError

from tideflow.core.autoscaler._samples import UtilizationSample
from tideflow.core.clock import Clock
from tideflow.core.errors import PoolClosedError, SchedulerError, WorkFailedError
from tideflow.core.observability import ActorEvent, Event, RetryEvent, ScaleEvent, log_event
from tideflow.core.scheduler._future import PoolFuture, invoke
from tideflow.core.scheduler._scheduling import (
    ActorState,
    WorkQueue,
    pick_actor,
    pick_actors_to_remove,
    retry_backoff,
)
from tideflow.core.scheduler._state import (
    _Actor,
    _discard,
    _is_actor_death,
    _run,
    _ScaleWatch,
    _Status,
    _status,
    _summary,
    _Todo,
    _Work,
)
from tideflow.core.scheduler._types import Scaler

_POLL_S = 0.02  # the longest the dispatcher blocks in ray.wait before it looks again
_IDLE_S = 1.0  # the longest it sleeps with nothing in flight (submit and resize wake it)


def _ready_on_node(_actor: object) -> tuple[str, str]:
    """An actor's readiness marker: runs in the actor once its constructor returned."""
    return "ready", ray.get_runtime_context().get_node_id()


class _PoolCore:
    """State and dispatcher of a pool; :class:`ActorPool` adds the public API on top."""

    name: str
    min_size: int
    max_size: int | None
    _remote_cls: Any
    _options: dict[str, Any]
    _args: tuple[Any, ...]
    _kwargs: dict[str, Any]
    _max_in_flight: int
    _max_retries: int
    _max_start_failures: int
    _backoff: tuple[float, float]
    _retry_exceptions: bool
    _scaler: Scaler | None
    _sample_interval: float
    _clock: Clock
    _log: Any

    def _init_state(self, max_events: int) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._queue: WorkQueue[_Work] = WorkQueue()
        self._actors: dict[str, _Actor] = {}
        # every ref the dispatcher waits on → (actor, work, value ref); the ready marker of
        # a starting actor has no work; (None, None, value ref or None) marks a ref whose
        # outcome no longer matters (its error, and its value's, are fetched and dropped)
        self._refs: dict[Any, tuple[_Actor | None, _Work | None, Any]] = {}
        self._pending_starts: list[float] = []  # replacements waiting out a backoff
        self._watches: list[_ScaleWatch] = []
        self._events: deque[Event] = deque(maxlen=max_events)
        self._counts = dict.fromkeys(
            ("submitted", "completed", "failed", "cancelled", "retries", "deaths"), 0
        )
        self._seq = self._order = self._start_failures = 0
        self._broken: BaseException | None = None
        self._closing = self._aborting = self._closed = False
        # Draining nodes -> the last actor number created before they were retired.
        self._retired_nodes: dict[str, int] = {}
        self._next_sample = self._clock.now()
        self._outside_backlog = 0  # work waiting for the pool outside it (note_backlog)

    # -- bookkeeping -----------------------------------------------------------------------

    def _size_locked(self) -> int:
        live = sum(1 for a in self._actors.values() if a.state is not ActorState.DRAINING)
        return live + len(self._pending_starts)

    def _ready_count_locked(self) -> int:
        return sum(1 for a in self._actors.values() if a.state is ActorState.READY)

    def _emit_locked(self, event: Event) -> None:
        self._events.append(event)
        log_event(self._log, event, level="info" if isinstance(event, ScaleEvent) else "debug")

    def _actor_event_locked(self, actor: str, status: _Status, reason: str | None = None) -> None:
        now = self._clock.now()
        self._emit_locked(
            ActorEvent(time=now, pool=self.name, actor=actor, status=status, reason=reason)
        )

    def _closed_error(self) -> PoolClosedError:
        return PoolClosedError(f"ActorPool {self.name!r} was shut down before the work ran")

    def _broken_error(self) -> SchedulerError:
        error = SchedulerError(
            f"ActorPool {self.name!r} is broken: its actors keep failing to start"
        )
        error.__cause__ = self._broken
        return error

    # -- actors ----------------------------------------------------------------------------

    def _start_actor_locked(self, todo: _Todo | None) -> _Actor | None:
        """Create an actor; errors raise when ``todo`` is None, else count as start failures."""
        self._order += 1
        name = f"{self.name}-{self._order}"
        try:
            handle = self._remote_cls.options(**self._options).remote(*self._args, **self._kwargs)
            ready_ref = handle.__ray_call__.remote(_ready_on_node)  # ("ready", node id)
        except Exception as error:
            if todo is None:
                raise
            self._log.error("pool.actor_create_failed", actor=name, error=_summary(error))
            self._start_failure_locked(error, todo)
            return None
        actor = _Actor(
            name=name,
            order=self._order,
            handle=handle,
            state=ActorState.STARTING,
            ready_ref=ready_ref,
        )
        self._actors[name] = actor
        self._refs[ready_ref] = (actor, None, None)
        return actor

    def _kill_locked(self, actor: _Actor) -> None:
        self._actors.pop(actor.name, None)
        if actor.ready_ref is not None and actor.ready_ref in self._refs:
            self._refs[actor.ready_ref] = (None, None, None)  # see the error, then drop it
        try:
            ray.kill(actor.handle, no_restart=True)
        except Exception as error:  # already gone
            self._log.debug("pool.kill_failed", actor=actor.name, error=_summary(error))
        self._changed.notify_all()

    def _remove_locked(self, actor: _Actor, reason: str, todo: _Todo) -> None:
        self._kill_locked(actor)
        self._actor_event_locked(actor.name, "removed", reason)
        self._check_watches_locked(todo)

    def _resize(self, size: int, *, reason: str, event: ScaleEvent | None) -> int:
        target = max(self.min_size, size if self.max_size is None else min(size, self.max_size))
        todo: _Todo = []
        with self._lock:
            if self._closing:
                raise PoolClosedError(f"ActorPool {self.name!r} is shut down; cannot resize")
            current = self._size_locked()
            if target == current:
                return target
            self._watches.clear()  # a new resize supersedes any unfinished one
            from_scaler = event is not None
            if event is not None and event.to_size != target:
                self._log.info("pool.scale_clamped", asked=event.to_size, target=target)
            if event is None:
                event = ScaleEvent(
                    time=self._clock.now(),
                    pool=self.name,
                    from_size=current,
                    to_size=target,
                    reason=reason,
                )
            self._watches.append(_ScaleWatch(event=event, target=target, from_scaler=from_scaler))
            self._emit_locked(event)
            if target > current:
                for _ in range(target - current):
                    self._start_actor_locked(todo)
            else:
                self._shrink_locked(current - target, todo)
            self._check_watches_locked(todo)
            self._changed.notify_all()
        _run(todo)
        self._wake.set()
        return target

    def _retire_locked(self, actors: list[_Actor], todo: _Todo) -> None:
        """No more work to ``actors`` (their node is going): each leaves once its calls are
        done, and a new actor takes its place (placed by Ray, which places nothing on a
        draining node)."""
        for actor in actors:
            if actor.in_flight:
                actor.state = ActorState.DRAINING
            else:
                self._remove_locked(actor, "its node is draining", todo)
            new = self._start_actor_locked(todo)
            if new is not None:
                self._actor_event_locked(actor.name, "replaced", f"node draining: {new.name}")
        self._changed.notify_all()

    def _shrink_locked(self, count: int, todo: _Todo) -> None:
        while count and self._pending_starts:
            self._pending_starts.pop()
            count -= 1
        loads = [a.load(self._max_in_flight) for a in self._actors.values()]
        for name in pick_actors_to_remove(loads, count):
            actor = self._actors[name]
            if actor.in_flight:
                actor.state = ActorState.DRAINING
                self._log.debug("pool.actor_draining", actor=name, in_flight=len(actor.in_flight))
            else:
                self._remove_locked(actor, "scaled down", todo)

    def _check_watches_locked(self, todo: _Todo) -> None:
        ready = self._ready_count_locked()
        for watch in list(self._watches):
            grow = watch.event.to_size > watch.event.from_size
            if not (ready >= watch.target if grow else len(self._actors) <= watch.target):
                continue
            self._watches.remove(watch)
            now = self._clock.now()
            if watch.from_scaler and self._scaler is not None:
                todo.append(partial(self._scaler_completed, watch.event, now))
            else:
                done = replace(watch.event, duration_s=max(0.0, now - watch.event.time))
                self._replace_event_locked(watch.event, done)

    def _replace_event_locked(self, old: Event, new: Event) -> None:
        for i, event in enumerate(self._events):
            if event is old:
                self._events[i] = new
                break
        self._log.info("pool.scale_completed", **new.as_dict())

    def _scaler_completed(self, event: ScaleEvent, at: float) -> None:
        assert self._scaler is not None
        try:
            completed = self._scaler.resize_completed(event, at=at)
        except Exception:
            self._log.exception("pool.scaler_failed", call="resize_completed")
            return
        with self._lock:
            self._replace_event_locked(event, completed)

    # -- work ------------------------------------------------------------------------------

    def _dispatch_locked(self, todo: _Todo) -> None:
        if self._aborting:
            return
        while self._queue.ready_count:
            head = self._queue.peek()
            limit = self._max_in_flight
            # Isolated work waits for an idle actor (and keeps its place in the queue).
            loads = [a.load(limit) for a in self._actors.values()]
            name = pick_actor(loads, 1 if head is not None and head.isolated else limit)
            if name is None:
                return
            work = self._queue.pop()
            if not work.future._dispatched():  # cancelled between cancel() and its clean-up
                continue
            actor = self._actors[name]
            call = actor.handle.__ray_call__.options(num_returns=2)
            try:
                status_ref, value_ref = call.remote(
                    invoke, work.method, work.kw_names, *work.args, *work.kw_values
                )
            except Exception as error:  # e.g. arguments that cannot be serialized
                self._fail_locked(work, error, todo)
                continue
            actor.in_flight[status_ref] = (work, value_ref)
            self._refs[status_ref] = (actor, work, value_ref)

    def _fail_locked(self, work: _Work, error: BaseException, todo: _Todo) -> None:
        self._counts["failed"] += 1
        todo.append(partial(work.future.set_exception, error))

    def _retry_or_fail_locked(
        self, work: _Work, error: BaseException, *, death: bool, todo: _Todo
    ) -> None:
        attempts = work.future.attempts
        retryable = death or self._retry_exceptions
        if retryable and attempts <= self._max_retries and not self._aborting:
            delay = retry_backoff(attempts, base_s=self._backoff[0], max_s=self._backoff[1])
            now = self._clock.now()
            self._counts["retries"] += 1
            self._emit_locked(
                RetryEvent(
                    time=now,
                    pool=self.name,
                    attempt=attempts + 1,
                    error=_summary(error),
                    backoff_s=delay,
                )
            )
            not_before = now + delay if delay > 0 else None
            if death:
                work.isolated = True  # the crash may have been another call's doing
            self._queue.push(work, priority=work.priority, seq=work.seq, not_before=not_before)
            return
        if death:
            message = (
                f"ActorPool {self.name!r}: {work.method}() failed after {attempts} attempt(s); "
                f"the last one ended with {_summary(error)}"
            )
            failure: BaseException = WorkFailedError(message, attempts=attempts)
            failure.__cause__ = error
        elif isinstance(error, RayTaskError):
            failure = error.as_instanceof_cause()
        else:
            failure = error
        self._fail_locked(work, failure, todo)

    def _actor_died_locked(self, actor: _Actor, error: BaseException, todo: _Todo) -> None:
        if self._actors.get(actor.name) is not actor:
            return
        was_draining = actor.state is ActorState.DRAINING
        self._kill_locked(actor)
        self._counts["deaths"] += 1
        self._actor_event_locked(actor.name, "died", _summary(error))
        self._log.warning("pool.actor_died", actor=actor.name, error=_summary(error))
        for status_ref, (work, value_ref) in actor.in_flight.items():
            self._refs[status_ref] = (None, None, value_ref)  # handled here, not again
            self._retry_or_fail_locked(work, error, death=True, todo=todo)
        actor.in_flight.clear()
        if not was_draining and not self._aborting:
            new = self._start_actor_locked(todo)
            if new is not None:
                self._actor_event_locked(actor.name, "replaced", f"replaced by {new.name}")
        self._check_watches_locked(todo)

    def _start_failed_locked(self, actor: _Actor, error: BaseException, todo: _Todo) -> None:
        self._kill_locked(actor)
        self._counts["deaths"] += 1
        self._actor_event_locked(actor.name, "died", f"failed to start: {_summary(error)}")
        self._start_failure_locked(error, todo)

    def _start_failure_locked(self, error: BaseException, todo: _Todo) -> None:
        self._start_failures += 1
        if self._start_failures <= self._max_start_failures:
            delay = retry_backoff(
                self._start_failures, base_s=self._backoff[0], max_s=self._backoff[1]
            )
            self._pending_starts.append(self._clock.now() + delay)
            return
        self._log.error("pool.broken", start_failures=self._start_failures, error=_summary(error))
        self._broken = error
        self._pending_starts.clear()
        self._changed.notify_all()
        for work in self._queue.drain():
            failure = WorkFailedError(
                f"ActorPool {self.name!r}: no actor could start ({_summary(error)})",
                attempts=work.future.attempts,
            )
            failure.__cause__ = error
            self._fail_locked(work, failure, todo)

    def _apply_locked(
        self, ref: Any, error: BaseException | None, todo: _Todo, meta: Any = None
    ) -> None:
        actor, work, value_ref = self._refs.pop(ref, (None, None, None))
        if actor is None:
            if value_ref is not None:
                todo.append(partial(_discard, value_ref))
            return
        if work is None:  # the ready marker of a starting actor
            if self._actors.get(actor.name) is not actor:
                return
            actor.ready_ref = None
            if error is not None:
                self._start_failed_locked(actor, error, todo)
                return
            actor.state = ActorState.READY
            actor.node_id = meta if isinstance(meta, str) else None
            retired_at = self._retired_nodes.get(actor.node_id or "")
            if retired_at is not None and actor.order <= retired_at:
                # Created before the node was retired (placed before Ray knew of the drain):
                # it leaves too. One created later that Ray placed there anyway stays (the
                # node takes work after all); retiring it again would start actors for ever.
                self._retire_locked([actor], todo)
                return
            self._start_failures = 0
            self._actor_event_locked(actor.name, "started")
            self._check_watches_locked(todo)
            return
        actor.in_flight.pop(ref, None)
        if error is None:
            self._counts["completed"] += 1
            todo.append(partial(work.future._succeed, value_ref, meta))
        else:
            todo.append(partial(_discard, value_ref))
            if _is_actor_death(error):
                self._retry_or_fail_locked(work, error, death=True, todo=todo)
                self._actor_died_locked(actor, error, todo)
                return
            self._retry_or_fail_locked(work, error, death=False, todo=todo)
        if actor.state is ActorState.DRAINING and not actor.in_flight:
            self._remove_locked(actor, "drained", todo)

    def _on_cancel(self, future: PoolFuture) -> None:
        with self._lock:
            removed = self._queue.remove(lambda w: w.future is future)
            if removed:
                self._counts["cancelled"] += 1
        if removed:  # still queued: it is ours to finish; otherwise the dispatcher did
            future.set_running_or_notify_cancel()

    # -- the dispatcher thread -------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as error:  # a bug: fail everything rather than hang callers
            self._log.exception("pool.dispatcher_crashed")
            self._abandon(SchedulerError(f"ActorPool {self.name!r}: dispatcher crashed: {error!r}"))

    def _abandon(self, error: BaseException) -> None:
        todo: _Todo = []
        with self._lock:
            works = self._queue.drain()
            for actor in list(self._actors.values()):
                works += [w for w, _ in actor.in_flight.values()]
                actor.in_flight.clear()
                self._kill_locked(actor)
            for work in works:
                self._fail_locked(work, error, todo)
            self._closing = self._closed = True
            self._changed.notify_all()
        _run(todo)

    def _step(self) -> bool:
        todo: _Todo = []
        with self._lock:
            self._wake.clear()
            now = self._clock.now()
            self._queue.release_due(now)
            due = [t for t in self._pending_starts if t <= now]
            self._pending_starts = [t for t in self._pending_starts if t > now]
            for _ in due:
                self._start_actor_locked(todo)
            self._dispatch_locked(todo)
            finished = self._closing and self._finished_locked(todo)
            refs = list(self._refs)
            timeout = self._timeout_locked(now)
        _run(todo)
        if finished:
            return False
        self._sample()
        ready: list[Any] = []
        if refs:
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
            if ready and len(refs) > 1:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        else:
            self._wake.wait(timeout)
        outcomes = [(ref, _status(ref)) for ref in ready]
        todo = []
        with self._lock:
            for ref, (error, meta) in outcomes:
                self._apply_locked(ref, error, todo, meta)
            if outcomes:
                self._dispatch_locked(todo)
                self._changed.notify_all()
        _run(todo)
        return True

    def _timeout_locked(self, now: float) -> float:
        times = [self._queue.next_due(), min(self._pending_starts, default=None)]
        if self._scaler is not None:
            times.append(self._next_sample)
        waits = [t - now for t in times if t is not None]
        return max(0.0, min([_POLL_S if self._refs else _IDLE_S, *waits]))

    def _finished_locked(self, todo: _Todo) -> bool:
        if self._aborting:
            works = self._queue.drain()
            for actor in self._actors.values():
                works += [w for w, _ in actor.in_flight.values()]
                actor.in_flight.clear()
            for work in works:
                self._fail_locked(work, self._closed_error(), todo)
        elif self._queue and not self._actors and not self._pending_starts:
            for work in self._queue.drain():  # nobody left to run it
                self._fail_locked(work, self._closed_error(), todo)
        if self._queue or any(a.in_flight for a in self._actors.values()):
            return False
        for actor in list(self._actors.values()):
            self._kill_locked(actor)
        self._pending_starts.clear()
        self._closed = True
        self._changed.notify_all()
        self._log.debug("pool.closed", **self._counts)
        return True

    def _sample(self) -> None:
        if self._scaler is None or self._clock.now() < self._next_sample:
            return
        self._next_sample = self._clock.now() + self._sample_interval
        try:
            with self._lock:
                if self._closing:
                    return
                sample = self._utilization_locked()
                size = self._size_locked()
            self._scaler.observe(sample)
            decision = self._scaler.decide(size)
            if decision.scale:
                self._resize(decision.target, reason=decision.reason, event=decision.event)
        except PoolClosedError:
            return
        except Exception:
            self._log.exception("pool.scaler_failed", call="observe/decide")

    def _utilization_locked(self) -> UtilizationSample:
        live = [a for a in self._actors.values() if a.state is not ActorState.DRAINING]
        return UtilizationSample(
            time=self._clock.now(),
            active=sum(1 for a in live if a.in_flight),
            total=len(live) + len(self._pending_starts),
            queued=len(self._queue) + self._outside_backlog,
            in_flight=sum(len(a.in_flight) for a in self._actors.values()),
            starting=sum(1 for a in live if a.state is ActorState.STARTING)
            + len(self._pending_starts),
        )
