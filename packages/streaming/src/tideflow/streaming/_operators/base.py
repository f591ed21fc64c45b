"""The interface every physical operator has, and what it hands back to the executor."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.streaming._execution.state import Batch
from tideflow.streaming._execution.steps import enqueue
from tideflow.streaming._metrics import StageMetrics
from tideflow.streaming._plan import StageSpec

__all__ = ["Finished", "OperatorHooks", "PhysicalOperator", "participant"]


def participant(spec: StageSpec) -> str:
    """The checkpoint participant that holds the state of stateful stage ``spec``."""
    return f"stage:{spec.name}"


def _ignore(*_args: Any) -> None:
    return None


@dataclass(kw_only=True)
class OperatorHooks:
    """What an operator may ask of the executor (tests pass recorders)."""

    hold: Callable[[Batch], None] = _ignore
    """A new batch (a half of a crashing one) holds its epoch and its read."""
    release: Callable[[Batch], None] = _ignore
    """A batch the operator took in is gone without a :class:`Finished` (its rows went on in
    new batches, which hold the epoch now): drop its hold."""
    wake: Callable[[Any], None] = _ignore
    """Called with a call's future when it finishes: the loop looks again at once."""
    snapshot: Callable[[Any, int, str, int, int], None] = _ignore
    """``snapshot(ref, epoch, participant, part, parts)``: a part of a stateful operator's
    state at the barrier of ``epoch`` is on its way (the executor acknowledges it)."""
    log: Any = None
    """The structlog logger operators log to (None: the executor's, unbound)."""


@dataclass(eq=False)
class Finished:
    """A batch the operator is done with, handed back in input order."""

    batch: Batch
    """The input batch (its hold passes to what the executor makes of the outputs)."""
    outputs: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    """(meta, payload ref) per output part: rows to send on and dead letters."""
    error: BaseException | None = None
    """Set when the batch's rows could not be processed at all: they go to the dead-letter
    output with this error."""


class PhysicalOperator(ABC):
    """One stage at run time: a bounded queue in, calls in flight, outputs in input order.

    The executor adds input, dispatches while :meth:`can_dispatch` and its backpressure
    policy allow, takes what is ready with :meth:`take_ready` (in the order the inputs were
    dispatched, which keeps per-key and per-split order), tells the operator about each
    epoch barrier, and shuts it down at the end.
    """

    participant: str | None = None
    """Its name in checkpoints when it has state of its own (None: stateless)."""
    epoch_major: bool = False
    """Queue by epoch, then priority (a keyed operator: its snapshot at a barrier must hold
    all of its epoch's rows)."""

    def __init__(self, spec: StageSpec, hooks: OperatorHooks) -> None:
        self.spec = spec
        self.hooks = hooks
        self.log = hooks.log or get_logger("tideflow.streaming.executor")
        self.metrics = StageMetrics(name=spec.name)
        self.queue: deque[Batch] = deque()

    @property
    def name(self) -> str:
        return self.spec.name

    def add_input(self, batch: Batch) -> None:
        """Queue ``batch`` (ahead of lower priorities; see :attr:`epoch_major`)."""
        enqueue(self.queue, batch, epoch_major=self.epoch_major)

    @property
    @abstractmethod
    def capacity(self) -> int:
        """Calls that may be in flight at once."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Calls in flight now."""

    @property
    def running(self) -> int:
        """Calls in flight that have not finished (a finished call may wait for an earlier
        one, outputs leaving in input order); what backpressure counts as sent."""
        return self.in_flight

    @property
    def waiting(self) -> int:
        """Queued batches that count against the queue limit (backpressure)."""
        return len(self.queue)

    @property
    def held(self) -> int:
        """Batches the operator holds (queued or in a call)."""
        return len(self.queue) + self.in_flight

    def can_dispatch(self) -> bool:
        """Whether a queued batch could be sent to an actor now (capacity permitting)."""
        return bool(self.queue) and self.in_flight < self.capacity

    def dispatch(self) -> Batch:
        """Send the head of the queue to the actors; returns it."""
        batch = self.queue.popleft()
        self._submit(batch)
        return batch

    @abstractmethod
    def _submit(self, batch: Batch) -> None: ...

    @abstractmethod
    def take_ready(self) -> list[Finished]:
        """The batches finished since the last call, in input order (stops at the first
        one still running)."""

    def start(self, first_epoch: int) -> None:  # noqa: B027 (a hook; most need none)
        """This run's first epoch is ``first_epoch`` (the ones before it are done)."""

    def on_barrier(self, epoch: int) -> None:  # noqa: B027 (a hook; most need none)
        """Every batch of ``epoch`` passed the whole pipeline (the sink pre-commits it)."""

    def on_tick(self, now: float, epoch: int, *, input_done: bool = False) -> None:  # noqa: B027
        """Called on every turn of the loop, after dispatching (a hook; most need none):
        ``now`` is the wall-clock time (:func:`time.time`), ``epoch`` the epoch being read
        (after the source ended: its last), and ``input_done`` says that the source ended
        (not a stop) and every batch upstream of this operator reached it. Work started
        here (keyed timers, end-of-input output) holds its epoch through ``hooks.hold``."""

    def held_epochs(self) -> set[int]:
        """The epochs of the batches the operator holds (queued or in a call)."""
        return {b.epoch for b in self.queue}

    def note_upstream(self, busy_epochs: set[int]) -> None:  # noqa: B027 (a hook)
        """Before each dispatch round (when the executor tracks it): the epochs whose rows
        are still upstream of this operator (being read, or in an earlier operator). Input
        kept back for company (re-batching) of other epochs may go now."""

    def note_backlog(self, count: int) -> None:  # noqa: B027 (a hook; most need none)
        """After each turn of the loop: ``count`` queued batches wait for this stage's own
        actors (not for a full stage downstream). An elastic pool counts them as its
        backlog (see ``ActorPool.note_backlog``)."""

    def stateful_actors(self) -> list[Any]:
        """Actors whose loss loses state (a keyed stage's partitions): the job moves when
        their node is drained. Stateless pools replace theirs (:meth:`on_nodes_draining`)."""
        return []

    def on_nodes_draining(self, node_ids: set[str]) -> None:  # noqa: B027 (a hook)
        """Nodes (Ray ids, hex) began draining: send no more work to actors there."""

    def wait_refs(self) -> list[Any]:
        """Refs whose completion the loop should wait on (beyond futures that wake it)."""
        return []

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for an actor to be up; False if none is yet."""
        return True

    def hand_on(self) -> Any | None:
        """Give up the work in flight and return the actors (a pool) for the next attempt
        of the run to take over, or ``None`` when they cannot serve it (then
        :meth:`shutdown` stops them). Only stateless stages hand theirs on."""
        return None

    @abstractmethod
    def shutdown(self, *, wait: bool) -> None:
        """Stop the actors (``wait``: let calls finish) and fill in the last metrics."""
