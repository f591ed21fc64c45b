"""The pool's bookkeeping records and small helpers around Ray calls (internal)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import ray
from ray.exceptions import RayActorError, RayTaskError

from tideflow.core.observability import ScaleEvent
from tideflow.core.scheduler._future import PoolFuture
from tideflow.core.scheduler._scheduling import ActorLoad, ActorState

_Todo = list[Callable[[], None]]
_Status = Literal["started", "died", "replaced", "removed"]


@dataclass(eq=False)
class _Work:
    future: PoolFuture
    method: str
    args: tuple[Any, ...]
    kw_names: tuple[str, ...]
    kw_values: tuple[Any, ...]
    priority: int
    seq: int
    isolated: bool = False
    """Runs alone on its actor: nothing else is in flight there meanwhile (a retry after
    an actor death, so that a crash cannot take innocent work down with it)."""


@dataclass(eq=False)
class _Actor:
    name: str
    order: int
    handle: Any
    state: ActorState
    ready_ref: Any = None
    in_flight: dict[Any, tuple[_Work, Any]] = field(default_factory=dict)
    node_id: str | None = None  # the Ray node it runs on, known once it is ready

    def load(self, max_in_flight: int) -> ActorLoad:
        """The actor's load; one running isolated work counts as a full actor."""
        isolated = any(work.isolated for work, _ in self.in_flight.values())
        in_flight = max_in_flight if isolated else len(self.in_flight)
        return ActorLoad(name=self.name, state=self.state, in_flight=in_flight, order=self.order)


@dataclass(eq=False)
class _ScaleWatch:
    event: ScaleEvent
    target: int
    from_scaler: bool


def _summary(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(error).__name__}: {text[:300]}"


def _is_actor_death(error: BaseException) -> bool:
    # A method that re-raises *another* actor's death arrives as RayTaskError(ActorDiedError),
    # an instance of both: that is a user error, not a death of our actor.
    return isinstance(error, RayActorError) and not isinstance(error, RayTaskError)


def _status(ref: Any) -> tuple[BaseException | None, Any]:
    """Fetch a status marker: (the error, None) or (None, the method's meta, if any).

    Work markers are ``(True, meta)``; an actor's readiness marker is a plain value.
    """
    try:
        marker = ray.get(ref)
    except Exception as error:
        return error, None
    return None, marker[1] if isinstance(marker, tuple) and len(marker) == 2 else None


def _discard(ref: Any) -> None:
    # Fetch a failed value so that Ray does not log it later as an "unhandled error".
    try:
        ray.get(ref, timeout=0)
    except Exception:
        return


def _run(todo: _Todo) -> None:
    for action in todo:
        action()
