"""The executor's scheduling steps, as plain functions over its state (no Ray, no clock:
times come in as arguments), so that tests can call them one by one."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from tideflow.streaming._acks import Origin
from tideflow.streaming._execution.state import Batch, LoopState, SplitState
from tideflow.streaming._plan import StageSpec

__all__ = [
    "IDLE_BACKOFF_S",
    "READ_AHEAD",
    "SINK_QUEUE_LIMIT",
    "enqueue",
    "epoch_due",
    "epochs_to_precommit",
    "gather_part",
    "hold",
    "note_empty_read",
    "note_next_awake",
    "plan_reads",
    "queue_limit",
    "release",
    "source_state",
]

READ_AHEAD = 4
"""Reads in flight per split."""
IDLE_BACKOFF_S = 0.05
"""An unbounded split with no data is asked again after this, unless its reader says when
(``SplitReader.next_awake``)."""
SINK_QUEUE_LIMIT = 8
"""Writes in flight before the sink counts as busy (without ``queue_limit``)."""


def enqueue(queue: deque[Batch], batch: Batch, *, epoch_major: bool = False) -> None:
    """Append, but ahead of every queued batch of lower priority (FIFO within a priority).

    ``epoch_major``: by epoch first, then by priority — a batch never goes ahead of one of an
    earlier epoch, and goes ahead of every one of a later epoch (a keyed stage's aligned
    snapshots need an epoch's rows before the next epoch's, at every stage before it)."""
    if epoch_major:
        rank = (batch.epoch, -batch.priority)
        if queue and (queue[-1].epoch, -queue[-1].priority) > rank:
            index = next(i for i, q in enumerate(queue) if (q.epoch, -q.priority) > rank)
            queue.insert(index, batch)
        else:
            queue.append(batch)
        return
    if not queue or queue[-1].priority >= batch.priority:
        queue.append(batch)
        return
    index = next(i for i, queued in enumerate(queue) if queued.priority < batch.priority)
    queue.insert(index, batch)


def queue_limit(downstream: StageSpec | None, configured: int | None = None) -> int:
    """Batches that may wait for ``downstream`` (None: the sink) before its feeder stops:
    ``configured`` if given, else 2 × its max actors × its max in flight (at least 4), and
    8 writes before the sink."""
    if configured is not None:
        return configured
    if downstream is None:
        return SINK_QUEUE_LIMIT
    return max(4, 2 * downstream.max_actors * downstream.max_in_flight)


MAX_UNCOMMITTED_EPOCHS = 2
"""Closed epochs not yet committed beyond which the interval closes no more epochs (like
Flink's max concurrent checkpoints): with a sink whose commit takes longer than the
interval, epochs grow instead of commits piling up on the committer without bound."""


def epoch_due(
    *,
    age_s: float,
    interval_s: float | None,
    epoch_reads: int,
    epoch_cap: int | None,
    uncommitted: int = 0,
) -> bool:
    """Whether the epoch being read should close: its interval passed (while fewer than
    :data:`MAX_UNCOMMITTED_EPOCHS` closed epochs wait for their commit) or its reads
    capped."""
    if interval_s is not None and age_s >= interval_s and uncommitted < MAX_UNCOMMITTED_EPOCHS:
        return True
    return epoch_cap is not None and epoch_reads >= epoch_cap


def plan_reads(
    splits: Iterable[SplitState],
    *,
    budget: int,
    now: float,
    epoch_reads: int,
    epoch_cap: int | None,
    read_ahead: int = READ_AHEAD,
) -> list[SplitState]:
    """The reads to issue now, in order (a split once per read), while the ``budget`` (room
    before the first queue) and the epoch's cap on reads last.

    Splits of higher :attr:`~SplitState.priority` come first; within a priority, the one
    served longest ago (:attr:`~SplitState.last_turn`; ties in the given order) — so the
    first split in the list does not take every read when the budget is short, and each
    split's turn comes round. A split in its turn takes up to ``read_ahead`` reads in
    flight. Finished splits and those waiting (:attr:`~SplitState.idle_until`) are skipped.
    Updates the served splits' ``last_turn``."""
    every = list(splits)
    turn = max((s.last_turn for s in every), default=0)
    ready = [s for s in every if not s.finished and s.idle_until <= now]
    ready.sort(key=lambda s: (-s.priority, s.last_turn))  # stable: ties keep their order
    room = budget if epoch_cap is None else min(budget, epoch_cap - epoch_reads)
    planned: list[SplitState] = []
    for s in ready:
        take = min(read_ahead - len(s.reading), room - len(planned))
        if take <= 0:
            if len(planned) >= room:
                break
            continue
        planned += [s] * take
        turn += 1
        s.last_turn = turn
    return planned


def epochs_being_read(state: LoopState) -> set[int]:
    """The epochs of the reads in flight."""
    return {epoch for s in state.splits.values() for _, _, epoch in s.reading}


def note_empty_read(
    state: LoopState, split: SplitState, epoch: int, now: float, next_awake_s: float | None = None
) -> None:
    """A read returned no rows: it does not fill its epoch, and an unfinished split is not
    asked again for ``next_awake_s`` (what its reader asked), or by default for
    :data:`IDLE_BACKOFF_S`."""
    if epoch == state.epoch and state.epoch_reads > 0:
        state.epoch_reads -= 1
    if not split.finished:
        wait = IDLE_BACKOFF_S if next_awake_s is None else next_awake_s
        split.idle_until = now + wait


def note_next_awake(split: SplitState, now: float, next_awake_s: float | None) -> None:
    """A read returned rows and its reader asked not to be read for ``next_awake_s``
    (``None``: read again as soon as there is room)."""
    if next_awake_s is not None and not split.finished:
        split.idle_until = now + next_awake_s


def hold(state: LoopState, batch: Batch) -> None:
    """``batch`` keeps its epoch (and its read, in ACK mode) from completing."""
    state.pending[batch.epoch] = state.pending.get(batch.epoch, 0) + 1
    if batch.origin is not None:
        batch.origin.pending += 1


def release(state: LoopState, batch: Batch) -> Origin | None:
    """Drop ``batch``'s hold; returns its origin when that was the origin's last hold (the
    read is acknowledged then)."""
    left = state.pending[batch.epoch] - 1
    if left:
        state.pending[batch.epoch] = left
    else:
        del state.pending[batch.epoch]
    origin = batch.origin
    if origin is None:
        return None
    origin.pending -= 1
    return origin if origin.pending == 0 else None


def epochs_to_precommit(state: LoopState) -> list[int]:
    """Pop the epochs, in order, whose barrier is recorded and whose batches were all
    written: the sink may pre-commit them. An epoch still held stops the ones after it."""
    ready = []
    while state.barriers and state.pending.get(state.barriers[0], 0) == 0:
        epoch = state.barriers.popleft()
        state.pending.pop(epoch, None)
        ready.append(epoch)
    return ready


def gather_part(
    parts: dict[tuple[int, str], dict[int, Any]],
    key: tuple[int, str],
    index: int,
    count: int,
    value: Any,
) -> list[Any] | None:
    """Keep part ``index`` of the ``count`` parts of a participant's state for an epoch
    (``key``: epoch, participant); once all came, pop and return them in part order."""
    got = parts.setdefault(key, {})
    got[index] = value
    if len(got) < count:
        return None
    del parts[key]
    return [got[k] for k in range(count)]


def source_state(splits: dict[str, SplitState]) -> dict[str, Any]:
    """The source's checkpoint state at an epoch barrier: where each split was read to."""
    return {
        "positions": {k: s.state for k, s in splits.items() if s.state is not None},
        "finished": sorted(k for k, s in splits.items() if s.finished),
    }
