"""The handle a caller gets for one piece of work, and the shim that runs it on an actor."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["PoolFuture", "WithMeta"]


class WithMeta:
    """Return this from an actor method to send small ``meta`` apart from a large ``value``.

    The pool fetches only the meta (into :attr:`PoolFuture.meta`, available once the future
    is done); the value stays in Ray's object store behind :attr:`PoolFuture.object_ref`.
    The streaming engine uses it to learn row counts without moving batches to the driver.
    """

    __slots__ = ("meta", "value")

    def __init__(self, value: Any, meta: Any) -> None:
        self.value = value
        self.meta = meta


class PoolFuture(Future[Any]):
    """The outcome of one piece of work submitted to an :class:`ActorPool`.

    A :class:`concurrent.futures.Future`, so ``concurrent.futures.wait`` and
    ``as_completed`` work on many of them at once. It is done when the work succeeded or
    failed for good (after any retries); the value itself stays in Ray's object store:

    * :meth:`result` fetches the value (``ray.get``) or raises the failure;
    * :attr:`object_ref` / :meth:`ref` give the ``ObjectRef`` of the successful attempt
      without fetching anything, to pass on to other Ray tasks or actors.

    Failures: a user exception is raised with its original type (a ``RayTaskError``
    subclass that is also an instance of it, so ``except KeyError`` works and the message
    carries the remote traceback); work whose actor kept dying raises
    :class:`~tideflow.core.errors.WorkFailedError` with the last actor error as
    ``__cause__``; work still queued when the pool shut down raises
    :class:`~tideflow.core.errors.PoolClosedError`.

    ``cancel()`` succeeds only while the work is queued; dispatched work runs to the end.
    Callbacks added with ``add_done_callback`` run on the pool's dispatcher thread.
    """

    def __init__(self, *, pool: str, method: str, priority: int) -> None:
        super().__init__()
        self.pool = pool
        """The name of the pool the work was submitted to."""
        self.method = method
        """The actor method the work calls."""
        self.priority = priority
        """The work's priority (higher is dispatched first)."""
        self._attempts = 0
        self._ref: Any = None
        self._meta: Any = None
        self._on_cancel: Callable[[PoolFuture], None] | None = None

    def __repr__(self) -> str:
        base = super().__repr__().rstrip(">")
        return f"{base} pool={self.pool!r} method={self.method!r} attempts={self._attempts}>"

    @property
    def attempts(self) -> int:
        """How many times the work was dispatched to an actor so far (1 without retries)."""
        return self._attempts

    @property
    def meta(self) -> Any:
        """The ``meta`` of a :class:`WithMeta` the method returned (else ``None``)."""
        return self._meta

    @property
    def object_ref(self) -> Any:
        """The ``ObjectRef`` of the successful attempt's value; ``None`` until it succeeded."""
        return self._ref

    def ref(self, timeout: float | None = None) -> Any:
        """Wait until the work is done and return its ``ObjectRef`` (nothing is fetched).

        Raises the failure if the work failed, :class:`TimeoutError` after ``timeout``
        seconds, and :class:`concurrent.futures.CancelledError` if it was cancelled.
        """
        return super().result(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the work and return its value, fetched from Ray's object store.

        ``timeout`` bounds the whole wait (the work and the fetch); past it
        :class:`TimeoutError` is raised (Ray's ``GetTimeoutError`` is one).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        ref = self.ref(timeout)
        import ray

        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return ray.get(ref, timeout=remaining)

    def cancel(self) -> bool:
        """Cancel the work if it is still queued; return whether it was cancelled."""
        cancelled = super().cancel()
        if cancelled and self._on_cancel is not None:
            self._on_cancel(self)
        return cancelled

    # -- used by the pool ---------------------------------------------------------------

    def _dispatched(self) -> bool:
        """Count one more attempt; the first marks the future running. False if cancelled."""
        if self._attempts == 0 and not self.set_running_or_notify_cancel():
            return False
        self._attempts += 1
        return True

    def _succeed(self, ref: Any, meta: Any = None) -> None:
        self._ref = ref
        self._meta = meta
        self.set_result(ref)


def invoke(
    instance: Any, method: str, kw_names: tuple[str, ...], *flat: Any
) -> tuple[tuple[bool, Any], Any]:
    """Run ``instance.method`` inside the actor (via the actor's ``__ray_call__``).

    Keyword values travel as trailing positional arguments (``kw_names`` says which) so
    that ``ObjectRef`` values among them are resolved by Ray like top-level arguments and
    no user keyword can clash with ``__ray_call__``'s own parameters. Returns a tiny status
    marker (``True``, or the ``meta`` of a :class:`WithMeta`) and the value as two separate
    objects: the pool fetches only the marker.
    """
    split = len(flat) - len(kw_names)
    args, values = flat[:split], flat[split:]
    value = getattr(instance, method)(*args, **dict(zip(kw_names, values, strict=True)))
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:
            close()
        message = (
            f"{type(instance).__name__}.{method} is a coroutine function; ActorPool runs "
            "synchronous actor methods only"
        )
        raise TypeError(message)
    if isinstance(value, WithMeta):
        return (True, value.meta), value.value
    return (True, None), value
