"""Backpressure as a policy object: may more batches be sent towards a stage (or the sink)
now, and if not, why. Like Ray Data's ``BackpressurePolicy``, the executor asks it before
every read of the source and every dispatch into a stage; the reason is what
:attr:`StageMetrics.backpressure_reason` reports."""

from __future__ import annotations

from typing import Protocol

from tideflow.streaming._execution.steps import queue_limit
from tideflow.streaming._plan import StageSpec

__all__ = ["BackpressurePolicy", "QueueLimits"]


class BackpressurePolicy(Protocol):
    """Decides how much may be sent towards ``downstream`` (a stage's spec; None: the sink).

    ``waiting`` is what already waits there (its queue; for the sink, the writes in
    flight) and ``sent`` what the sender has on its way (reads in flight, or the sending
    stage's calls in flight).
    """

    def budget(self, downstream: StageSpec | None, *, waiting: int, sent: int) -> int:
        """How many more batches may be sent now (0: hold back)."""
        ...

    def reason(self, downstream: StageSpec | None) -> str:
        """Why sending is held back when :meth:`budget` is 0."""
        ...


class QueueLimits:
    """The default policy: a bounded queue before every stage and before the sink.

    The limit is ``queue_limit`` when given, else 2 × the stage's max actors × its max in
    flight (at least 4), and 8 writes before the sink (:func:`steps.queue_limit`).
    """

    def __init__(self, queue_limit: int | None = None) -> None:
        self.queue_limit = queue_limit

    def budget(self, downstream: StageSpec | None, *, waiting: int, sent: int) -> int:
        return max(0, queue_limit(downstream, self.queue_limit) - waiting - sent)

    def reason(self, downstream: StageSpec | None) -> str:
        return f"queue of {downstream.name!r} full" if downstream is not None else "sink busy"

    def __repr__(self) -> str:
        return f"QueueLimits(queue_limit={self.queue_limit!r})"
