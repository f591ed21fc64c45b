"""Re-batching in front of a stage (``map_batches(fn, batch_size=N)``): batches of any size
in, batches of ``N`` rows out.

A stage after a fan-out (one video → hundreds of frames) or a filter sees batches of
whatever size the stage before it produced; a model wants its own batch size. The
:class:`Rebatcher` gathers the rows of consecutive batches of one epoch (and one priority)
and cuts them into batches of exactly ``N`` rows, in order. What is left over — fewer than
``N`` rows — goes on as a smaller batch once nothing upstream still holds rows of its
epoch (the epoch's reads and the stages before this one are done with it), so an epoch
never waits for rows that will not come, and a quiet source does not keep rows back.

The rows never pass through the driver, and no task runs to cut them: a cut batch's ref is
:class:`Parts` (the input refs, the rows to skip, the rows to take), which the stage's actor
joins itself (``StageWorker.process_parts``): Ray hands it the inputs' payloads as the
call's arguments. An input batch keeps holding its epoch (and so the checkpoint) until the
last of its rows left in a new batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tideflow.streaming._execution.state import Batch

__all__ = ["Parts", "Rebatcher", "materialize", "parts"]

Concat = Callable[[list[Any], int, int], Any]
"""``concat(refs, skip, rows)``: what stands for rows ``skip`` … ``skip + rows`` of the
batches ``refs`` one after another (:func:`parts`; tests pass their own)."""


@dataclass(frozen=True)
class Parts:
    """A batch's ref when it was cut from others: rows ``skip`` … ``skip + rows`` of the
    payloads ``refs`` one after another."""

    refs: tuple[Any, ...]
    skip: int
    rows: int

    def slice(self, start: int, length: int) -> Parts:
        """Rows ``start`` … ``start + length`` of these rows (a half, to bisect)."""
        return Parts(self.refs, self.skip + start, length)


def parts(refs: list[Any], skip: int, rows: int) -> Parts:
    return Parts(tuple(refs), skip, rows)


def materialize(ref: Any) -> Any:
    """An ``ObjectRef`` of the rows of ``ref`` (joined in a Ray task when it is
    :class:`Parts`): for where a plain payload is needed (the dead-letter writer)."""
    if not isinstance(ref, Parts):
        return ref
    from tideflow.streaming._worker import concat_payloads

    task: Any = concat_payloads
    return task.remote(ref.skip, ref.rows, *ref.refs)


@dataclass(eq=False)
class _Buffer:
    """The rows of one (epoch, priority) waiting to be cut: input batches, the first one
    possibly partly taken already."""

    parts: deque[Batch] = field(default_factory=deque)
    skip: int = 0
    """Rows of the first part already sent on."""
    rows: int = 0
    """Rows waiting (all parts, less ``skip``)."""


class Rebatcher:
    """Cuts the batches added to it into batches of ``size`` rows (see the module)."""

    def __init__(
        self,
        size: int,
        *,
        hold: Callable[[Batch], None],
        release: Callable[[Batch], None],
        concat: Concat = parts,
    ) -> None:
        if size < 1:
            raise ValueError(f"batch_size must be >= 1; got {size}")
        self.size = size
        self._hold = hold
        self._release = release
        self._concat = concat
        self._buffers: dict[tuple[int, int], _Buffer] = {}

    @property
    def held(self) -> int:
        """Input batches with rows still waiting here."""
        return sum(len(b.parts) for b in self._buffers.values())

    @property
    def rows(self) -> int:
        """Rows waiting here."""
        return sum(b.rows for b in self._buffers.values())

    def epochs(self) -> set[int]:
        """The epochs that have rows waiting here."""
        return {epoch for epoch, _ in self._buffers}

    def add(self, batch: Batch) -> list[Batch]:
        """Take ``batch``; return the batches of ``size`` rows that may go on now."""
        if not self._buffers and batch.rows == self.size:
            return [batch]  # already the size wanted: no cut
        key = (batch.epoch, batch.priority)
        buffer = self._buffers.setdefault(key, _Buffer())
        buffer.parts.append(batch)
        buffer.rows += batch.rows
        return self._ready(None)

    def flush(self, busy_epochs: Iterable[int]) -> list[Batch]:
        """What may go on now that upstream holds rows only of ``busy_epochs``: the rows
        left of every other epoch go as one last, smaller batch each."""
        return self._ready(set(busy_epochs))

    def _ready(self, busy: set[int] | None) -> list[Batch]:
        """Cuts in epoch order (an epoch's urgent rows first): a later epoch's rows wait
        while an earlier epoch keeps rows back, so no stage after this one sees a later
        epoch's rows before an earlier one's (a keyed stage's snapshots rely on it)."""
        out = []
        for epoch in sorted({e for e, _ in self._buffers}):
            for key in sorted((k for k in self._buffers if k[0] == epoch), key=lambda k: -k[1]):
                buffer = self._buffers[key]
                while buffer.rows >= self.size:
                    out.append(self._cut(key, buffer, self.size))
                if buffer.rows and busy is not None and epoch not in busy:
                    out.append(self._cut(key, buffer, buffer.rows))
                if not buffer.rows:
                    del self._buffers[key]
            if any(k[0] == epoch for k in self._buffers):
                break
        return out

    def _cut(self, key: tuple[int, int], buffer: _Buffer, rows: int) -> Batch:
        """The next ``rows`` rows of ``buffer`` as one batch; releases the inputs it used up."""
        epoch, priority = key
        first = buffer.parts[0]
        if buffer.skip == 0 and first.rows == rows:  # one whole input: send it on as it is
            buffer.parts.popleft()
            buffer.rows -= rows
            return first
        refs, used, need, skip = [], 0, rows, buffer.skip
        for part in buffer.parts:
            refs.append(part.ref)
            take = min(part.rows - skip, need)
            need -= take
            if skip + take == part.rows:  # used up
                used, skip = used + 1, 0
            else:  # keeps rows for the next cut
                skip += take
            if need == 0:
                break
        batch = Batch(
            epoch=epoch, ref=self._concat(refs, buffer.skip, rows), rows=rows, priority=priority
        )
        self._hold(batch)  # before the inputs let go of the epoch
        for _ in range(used):
            self._release(buffer.parts.popleft())
        buffer.skip = skip
        buffer.rows -= rows
        return batch
