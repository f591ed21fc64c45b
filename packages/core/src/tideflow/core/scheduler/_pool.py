"""An elastic pool of Ray actors: priority queue, least-loaded dispatch, retries, resizing."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Any

import ray
from ray.actor import ActorClass

from tideflow.core.autoscaler._samples import UtilizationSample
from tideflow.core.clock import Clock, MonotonicClock
from tideflow.core.errors import ConfigError, PoolClosedError
from tideflow.core.observability import Event, get_logger
from tideflow.core.scheduler._core import _PoolCore
from tideflow.core.scheduler._future import PoolFuture
from tideflow.core.scheduler._resources import ResourceRequest
from tideflow.core.scheduler._scheduling import ActorState
from tideflow.core.scheduler._state import _run, _Todo, _Work
from tideflow.core.scheduler._types import PoolStats, Scaler

_RESOURCE_KEYS = frozenset({"num_cpus", "num_gpus", "accelerator_type", "memory", "resources"})

__all__ = ["ActorPool"]


class ActorPool(_PoolCore):
    """An elastic pool of Ray actors of one class that runs submitted work on them.

    ``actor_cls`` is a plain class (the pool wraps it with ``ray.remote``) or an existing
    ``ray.remote`` actor class. Work is ``submit(method, *args, priority=..., **kwargs)``:
    it waits in a priority queue (higher first, FIFO within a priority) and goes to the
    least-loaded ready actor that has fewer than ``max_in_flight_per_actor`` pieces in flight.
    Calls beyond the first per actor queue inside the actor unless ``actor_options`` sets
    ``max_concurrency``. Actor methods must be synchronous.

    Failures: when an actor dies (``ray.kill``, a crash, a lost node) it is replaced and
    its in-flight work is retried with exponential backoff, at most ``max_retries`` times;
    then the future fails with :class:`~tideflow.core.errors.WorkFailedError` whose
    ``__cause__`` is the last actor error. An exception raised by the method fails the work
    at once with the original exception type, unless ``retry_exceptions`` is set. Actors
    that fail to start (the constructor raised, the process died) are replaced with backoff;
    after more than ``max_start_failures`` in a row the pool is broken: queued work fails
    with :class:`~tideflow.core.errors.WorkFailedError` (the start error as ``__cause__``)
    and ``submit`` raises :class:`~tideflow.core.errors.SchedulerError`.

    :meth:`resize` adds actors (they count in :attr:`size` while they start) or removes
    them: starting and idle actors first; busy ones drain (no new work, killed when their
    work is done), so nothing is lost. An actor that cannot be placed (its resources are
    not free) stays starting until it can. With a ``scaler`` (a
    :class:`~tideflow.core.scheduler.Scaler`, e.g. ``tideflow.core.autoscaler.PoolScaler``)
    the pool samples itself every ``sample_interval_s`` and resizes as the scaler decides.

    Each call returns two objects: a tiny status marker, which the pool's dispatcher
    thread fetches to learn success or failure, and the value, which stays in Ray's object
    store until :meth:`PoolFuture.result` fetches it (or is passed on by
    :attr:`PoolFuture.object_ref`). Done callbacks run on the dispatcher thread: keep them
    short, and do not fetch large values there.

    ``clock`` times events, samples and retry backoff; with a fake clock, retries wait
    until the clock is advanced. Use the pool as a context manager or call
    :meth:`shutdown`. The pool is thread-safe.

    >>> with ActorPool(Embedder, size=2, max_size=8,
    ...                resources=ResourceRequest(num_gpus=1)) as pool:  # doctest: +SKIP
    ...     urgent = pool.submit("embed", texts, priority=10)
    ...     vectors = urgent.result()
    """

    def __init__(
        self,
        actor_cls: type | ActorClass,
        *,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        size: int = 1,
        min_size: int = 1,
        max_size: int | None = None,
        resources: ResourceRequest | None = None,
        actor_options: Mapping[str, Any] | None = None,
        max_in_flight_per_actor: int = 1,
        max_retries: int = 3,
        max_start_failures: int = 3,
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 10.0,
        retry_exceptions: bool = False,
        name: str | None = None,
        scaler: Scaler | None = None,
        sample_interval_s: float = 0.2,
        max_events: int = 1000,
        clock: Clock | None = None,
    ) -> None:
        remote_cls, user_cls = _actor_classes(actor_cls)
        self.name: str = name if name is not None else getattr(user_cls, "__name__", "pool")
        """The pool's name, used in actor names, events and logs."""
        _validate(
            self.name,
            size=size,
            min_size=min_size,
            max_size=max_size,
            max_in_flight=max_in_flight_per_actor,
            max_retries=max_retries,
            max_start_failures=max_start_failures,
        )
        _validate_times(self.name, retry_backoff_s, retry_backoff_max_s, sample_interval_s)
        if resources is not None and not isinstance(resources, ResourceRequest):
            message = (
                f"ActorPool {self.name!r}: resources must be a ResourceRequest; got {resources!r}"
            )
            raise ConfigError(message)
        extra = dict(actor_options or {})
        clash = sorted((_RESOURCE_KEYS | {"name"}) & extra.keys())
        if clash:
            message = (
                f"ActorPool {self.name!r}: actor_options may not set {clash}; pass resources= "
                "(a ResourceRequest) for resources; actor names are chosen by the pool"
            )
            raise ConfigError(message)
        if resources is None and not isinstance(actor_cls, ActorClass):
            resources = ResourceRequest()
        self.resources = resources
        """What each actor reserves (``None``: the ``ray.remote`` class's own options)."""
        self._remote_cls = remote_cls
        self._user_cls = user_cls
        self._options = {**(resources.to_ray_options() if resources else {}), **extra}
        self._args, self._kwargs = tuple(args), dict(kwargs or {})
        self.min_size, self.max_size = min_size, max_size
        self._max_in_flight = max_in_flight_per_actor
        self._max_retries = max_retries
        self._max_start_failures = max_start_failures
        self._backoff = (retry_backoff_s, retry_backoff_max_s)
        self._retry_exceptions = retry_exceptions
        self._scaler = scaler
        self._sample_interval = sample_interval_s
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._log = get_logger("tideflow.scheduler", pool=self.name)

        self._init_state(max_events)

        with self._lock:
            try:
                for _ in range(size):
                    self._start_actor_locked(None)
            except Exception:
                for actor in list(self._actors.values()):
                    self._kill_locked(actor)
                raise
        self._thread = threading.Thread(
            target=self._loop, name=f"tideflow-pool-{self.name}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"ActorPool(name={self.name!r}, size={self.size}, closed={self._closing})"

    # -- submitting work -------------------------------------------------------------------

    def submit(
        self, method: str, /, *args: Any, priority: int = 0, isolated: bool = False, **kwargs: Any
    ) -> PoolFuture:
        """Queue a call of ``method(*args, **kwargs)`` on some actor; return its future.

        Higher ``priority`` runs first; equal priorities run in submission order.
        ``isolated=True`` runs the call alone on an idle actor (nothing else is sent there
        until it ends): for work that may crash its actor, so that a crash cannot take
        other calls down with it. Retries after an actor death are always isolated.
        ``ObjectRef`` arguments (top level, positional or keyword) are resolved by Ray.
        Raises :class:`~tideflow.core.errors.PoolClosedError` after :meth:`shutdown`.
        """
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigError(f"ActorPool.submit: priority must be an int; got {priority!r}")
        if self._user_cls is not None and not callable(getattr(self._user_cls, method, None)):
            message = f"ActorPool {self.name!r}: {self._user_cls.__name__} has no method {method!r}"
            raise ConfigError(message)
        future = PoolFuture(pool=self.name, method=method, priority=priority)
        future._on_cancel = self._on_cancel
        todo: _Todo = []
        with self._lock:
            if self._closing:
                raise PoolClosedError(f"ActorPool {self.name!r} is shut down; cannot submit")
            if self._broken is not None:
                raise self._broken_error()
            self._seq += 1
            work = _Work(
                future=future,
                method=method,
                args=args,
                kw_names=tuple(kwargs),
                kw_values=tuple(kwargs.values()),
                priority=priority,
                seq=self._seq,
                isolated=bool(isolated),
            )
            self._counts["submitted"] += 1
            self._queue.push(work, priority=priority, seq=work.seq)
            self._dispatch_locked(todo)
        _run(todo)
        self._wake.set()
        return future

    # -- size ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Actors the pool has or is starting (draining ones excluded)."""
        with self._lock:
            return self._size_locked()

    def resize(self, size: int) -> int:
        """Ask for ``size`` actors, clamped to [min_size, max_size]; return the new size.

        Growing starts actors at once (they take work when ready). Shrinking removes
        pending and starting actors first, then idle ones, then the least loaded, which
        drain: they get no new work and are killed once their in-flight work finished.
        Raises :class:`~tideflow.core.errors.ConfigError` if ``size`` is not an int >= 0.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"ActorPool {self.name!r}: resize needs an int >= 0; got {size!r}")
        return self._resize(size, reason=f"resize({size}) called", event=None)

    def wait_ready(self, count: int | None = None, *, timeout: float | None = None) -> bool:
        """Block until ``count`` actors (default: :attr:`size`) are ready; False on timeout."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: (
                    self._broken is not None
                    or self._closed
                    or self._ready_count_locked()
                    >= (self._size_locked() if count is None else count)
                ),
                timeout,
            )
            if self._broken is not None:
                raise self._broken_error()
            return bool(ok) and not self._closed

    # -- what the pool reports -------------------------------------------------------------

    def utilization(self) -> UtilizationSample:
        """The pool's load now: busy actors of all (starting included), queued (with the
        backlog noted by :meth:`note_backlog`), in flight."""
        with self._lock:
            return self._utilization_locked()

    def note_backlog(self, count: int) -> None:
        """Work that waits for this pool outside it, now: e.g. the input queue of a stage
        whose calls the stage holds back (its limit on work in flight). It counts as
        queued in the pool's utilization samples until noted again, so the scaler sees a
        backlog that never reaches :meth:`submit`. Raises ``ConfigError`` if ``count`` is
        not an int >= 0."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(
                f"ActorPool {self.name!r}: note_backlog needs an int >= 0; got {count!r}"
            )
        with self._lock:
            self._outside_backlog = count

    @property
    def stats(self) -> PoolStats:
        """Counters since the pool started, and the load of each live actor."""
        with self._lock:
            states = [a.state for a in self._actors.values()]
            return PoolStats(
                **self._counts,
                queued=len(self._queue),
                in_flight=sum(len(a.in_flight) for a in self._actors.values()),
                starting=states.count(ActorState.STARTING) + len(self._pending_starts),
                ready=states.count(ActorState.READY),
                draining=states.count(ActorState.DRAINING),
                in_flight_per_actor={n: len(a.in_flight) for n, a in self._actors.items()},
            )

    def retire_nodes(self, node_ids: Collection[str]) -> int:
        """Send no more work to the actors on ``node_ids`` (Ray node ids, hex: nodes being
        drained, e.g. preempted): each finishes its calls in flight and leaves, and a new
        actor takes its place elsewhere. Returns how many actors were retired now; actors
        that become ready on those nodes later are retired then."""
        todo: _Todo = []
        with self._lock:
            fresh = set(node_ids) - set(self._retired_nodes)
            self._retired_nodes.update(dict.fromkeys(fresh, self._order))
            going = [
                a
                for a in self._actors.values()
                if a.node_id in fresh and a.state is not ActorState.DRAINING
            ]
            if going:
                self._log.info("pool.retiring", nodes=sorted(fresh), actors=len(going))
                self._retire_locked(going, todo)
        _run(todo)
        self._wake.set()
        return len(going)

    @property
    def reusable(self) -> bool:
        """Whether the pool can take work: not shut down, and its actors do not keep
        failing to start (a caller that gives up its work may hand the pool on)."""
        with self._lock:
            return not (self._closing or self._broken is not None)

    @property
    def events(self) -> list[Event]:
        """Recent actor, retry and scale events, oldest first (at most ``max_events``)."""
        with self._lock:
            return list(self._events)

    @property
    def actors(self) -> dict[str, Any]:
        """Handles of the starting and ready actors by name (e.g. to broadcast new weights)."""
        with self._lock:
            return {
                n: a.handle for n, a in self._actors.items() if a.state is not ActorState.DRAINING
            }

    # -- shutting down ---------------------------------------------------------------------

    def shutdown(
        self, wait: bool = True, *, cancel_pending: bool = False, timeout: float | None = None
    ) -> None:
        """Stop taking work, finish what was submitted, then kill every actor.

        ``cancel_pending`` fails queued work with :class:`~tideflow.core.errors.PoolClosedError`
        instead of running it. ``wait=False`` returns at once (the pool finishes in the
        background). With ``timeout``, work still unfinished after that many seconds fails
        with ``PoolClosedError`` and the actors are killed regardless.
        """
        todo: _Todo = []
        with self._lock:
            self._closing = True
            if cancel_pending:
                for work in self._queue.drain():
                    self._fail_locked(work, self._closed_error(), todo)
        _run(todo)
        self._wake.set()
        if not wait or threading.current_thread() is self._thread:
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._lock:
                self._aborting = True
            self._wake.set()
            self._thread.join()

    def __enter__(self) -> ActorPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Shut down; on an exception, abandon the work (it fails) instead of waiting for it."""
        if exc_type is None:
            self.shutdown(wait=True)
        else:
            self.shutdown(wait=True, cancel_pending=True, timeout=0)


def _actor_classes(actor_cls: Any) -> tuple[Any, type | None]:
    if isinstance(actor_cls, ActorClass):
        modified = getattr(getattr(actor_cls, "__ray_metadata__", None), "modified_class", None)
        return actor_cls, getattr(modified, "__ray_actor_class__", None)
    if not isinstance(actor_cls, type):
        raise ConfigError(f"ActorPool: actor_cls must be a class; got {actor_cls!r}")
    return ray.remote(actor_cls), actor_cls


def _validate(
    name: str,
    *,
    size: int,
    min_size: int,
    max_size: int | None,
    max_in_flight: int,
    max_retries: int,
    max_start_failures: int,
) -> None:
    def bad(field_name: str, allowed: str, seen: object) -> ConfigError:
        return ConfigError(f"ActorPool {name!r}: {field_name} must be {allowed}; got {seen!r}")

    ints = {"size": size, "min_size": min_size, "max_in_flight_per_actor": max_in_flight}
    ints |= {"max_retries": max_retries, "max_start_failures": max_start_failures}
    for field_name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(field_name, "an int >= 0", value)
    if max_in_flight < 1:
        raise bad("max_in_flight_per_actor", ">= 1", max_in_flight)
    if max_size is not None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise bad("max_size", "an int >= 1 or None", max_size)
        if max_size < min_size:
            raise bad("max_size", f">= min_size ({min_size})", max_size)
    if size < min_size or (max_size is not None and size > max_size):
        raise bad("size", f"within [min_size, max_size] = [{min_size}, {max_size}]", size)


def _validate_times(name: str, backoff: float, backoff_max: float, sample: float) -> None:
    for field_name, value in (("retry_backoff_s", backoff), ("retry_backoff_max_s", backoff_max)):
        if not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"ActorPool {name!r}: {field_name} must be >= 0; got {value!r}")
    if not isinstance(sample, int | float) or sample <= 0:
        raise ConfigError(f"ActorPool {name!r}: sample_interval_s must be > 0; got {sample!r}")
