"""The pool's scheduling decisions as plain functions and a plain queue: no Ray, no threads.

:class:`~tideflow.core.scheduler.ActorPool` calls these under its lock; tests call them
directly.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "ActorLoad",
    "ActorState",
    "WorkQueue",
    "pick_actor",
    "pick_actors_to_remove",
    "retry_backoff",
]

T = TypeVar("T")


class ActorState(enum.StrEnum):
    """Where an actor of a pool is in its life."""

    STARTING = "starting"
    """Created, not yet ready (its constructor runs, or it waits for resources)."""
    READY = "ready"
    """Takes work."""
    DRAINING = "draining"
    """Removed by a resize, or leaving a draining node: takes no new work, killed once its
    in-flight work is done."""


@dataclass(frozen=True, kw_only=True)
class ActorLoad:
    """What the scheduling functions need to know about one actor."""

    name: str
    """The actor's name within the pool."""
    state: ActorState
    """Where it is in its life."""
    in_flight: int
    """Work dispatched to it and not finished."""
    order: int
    """When it was created, relative to the pool's other actors (larger is newer)."""


def pick_actor(actors: Sequence[ActorLoad], max_in_flight: int) -> str | None:
    """The actor that should get the next piece of work, or ``None`` if none can take it.

    Only ready actors with fewer than ``max_in_flight`` pieces of work in flight qualify;
    among them the least loaded wins, and the oldest breaks ties (so that a pool at low load
    keeps its newest actors idle, which makes them the first to go on a scale-down).
    """
    best: ActorLoad | None = None
    for actor in actors:
        if actor.state is not ActorState.READY or actor.in_flight >= max_in_flight:
            continue
        if best is None or (actor.in_flight, actor.order) < (best.in_flight, best.order):
            best = actor
    return None if best is None else best.name


def pick_actors_to_remove(actors: Sequence[ActorLoad], count: int) -> list[str]:
    """The ``count`` actors a scale-down should remove, cheapest to lose first.

    Starting actors go first (they hold no work and may be waiting for resources), then
    ready actors from the least loaded up (idle ones first); ties go to the newest. Actors
    already draining are not candidates.
    """
    if count <= 0:
        return []
    candidates = [a for a in actors if a.state is not ActorState.DRAINING]
    candidates.sort(key=lambda a: (a.state is not ActorState.STARTING, a.in_flight, -a.order))
    return [a.name for a in candidates[:count]]


def retry_backoff(retry: int, *, base_s: float, max_s: float) -> float:
    """Seconds to wait before retry number ``retry`` (1 is the first): exponential, capped.

    Examples:
        >>> [retry_backoff(r, base_s=0.5, max_s=3.0) for r in (1, 2, 3, 4, 5)]
        [0.5, 1.0, 2.0, 3.0, 3.0]
    """
    if retry < 1:
        raise ValueError(f"retry_backoff: retry must be >= 1; got {retry}")
    if base_s <= 0:
        return 0.0
    exponent = min(retry - 1, 62)  # beyond that the cap always wins; avoid huge floats
    return float(min(max_s, base_s * 2.0**exponent))


class WorkQueue(Generic[T]):
    """Work waiting for an actor: highest priority first, FIFO within a priority.

    Items pushed with a ``not_before`` time (a retry's backoff) wait aside until
    :meth:`release_due` is called at or after that time; they then keep their original
    place (priority and submission order), ahead of later work of the same priority.

    >>> q = WorkQueue()
    >>> q.push("low", priority=0, seq=1)
    >>> q.push("high", priority=5, seq=2)
    >>> q.pop(), q.pop()
    ('high', 'low')
    """

    def __init__(self) -> None:
        self._ready: list[tuple[int, int, T]] = []
        self._delayed: list[tuple[float, int, int, T]] = []

    def push(self, item: T, *, priority: int, seq: int, not_before: float | None = None) -> None:
        """Queue ``item``; ``seq`` must be unique (the submission number)."""
        if not_before is None:
            heapq.heappush(self._ready, (-priority, seq, item))
        else:
            heapq.heappush(self._delayed, (not_before, -priority, seq, item))

    def release_due(self, now: float) -> int:
        """Move delayed items whose time has come into the ready queue; return how many."""
        moved = 0
        while self._delayed and self._delayed[0][0] <= now:
            _, neg_priority, seq, item = heapq.heappop(self._delayed)
            heapq.heappush(self._ready, (neg_priority, seq, item))
            moved += 1
        return moved

    def next_due(self) -> float | None:
        """When the earliest delayed item becomes ready, or ``None`` if none waits."""
        return self._delayed[0][0] if self._delayed else None

    def peek(self) -> T | None:
        """The next ready item, without removing it."""
        return self._ready[0][2] if self._ready else None

    def pop(self) -> T:
        """Remove and return the next ready item; ``IndexError`` if none is ready."""
        return heapq.heappop(self._ready)[2]

    def remove(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove and return every item, ready or delayed, for which ``predicate`` is true."""
        removed = [e[2] for e in self._ready if predicate(e[2])]
        removed += [e[3] for e in self._delayed if predicate(e[3])]
        if removed:
            self._ready = [e for e in self._ready if not predicate(e[2])]
            self._delayed = [e for e in self._delayed if not predicate(e[3])]
            heapq.heapify(self._ready)
            heapq.heapify(self._delayed)
        return removed

    def drain(self) -> list[T]:
        """Remove and return every item, ready and delayed."""
        items = [entry[2] for entry in sorted(self._ready)]
        items += [entry[3] for entry in sorted(self._delayed)]
        self._ready.clear()
        self._delayed.clear()
        return items

    @property
    def ready_count(self) -> int:
        """Items that can be dispatched now."""
        return len(self._ready)

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)

    def __iter__(self) -> Iterator[T]:
        yield from (entry[2] for entry in self._ready)
        yield from (entry[3] for entry in self._delayed)
