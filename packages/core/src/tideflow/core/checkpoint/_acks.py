"""Record-level acknowledgements: the committable offset of each partition.

Memory grows with the number of *gaps* (runs of pending offsets), not with the number of
records: pending offsets are kept as sorted, disjoint ``[start, end)`` ranges.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Hashable
from typing import Literal

from tideflow.core.errors import CheckpointError

__all__ = ["AckTracker"]


class _Partition:
    """Pending offsets of one partition as parallel sorted lists of range bounds."""

    __slots__ = ("ends", "next_offset", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.next_offset: int | None = None  # one past the last tracked offset


class AckTracker:
    """Which offsets of each partition may be committed, given out-of-order acks.

    Offsets are *tracked* when their records are emitted, increasing per partition; gaps
    are allowed (Kafka transaction markers, compacted offsets) and never stall the
    watermark. Records are *acknowledged* in any order once processed.
    :meth:`committable` is the next offset to commit, Kafka-style: the first tracked
    offset not yet acknowledged, or one past the last tracked offset when none is pending.

    >>> acks = AckTracker()
    >>> acks.track_range(0, 10, 15)
    >>> acks.ack(0, 11)
    True
    >>> acks.ack(0, 10)
    True
    >>> acks.committable(0)
    12

    An ack of an offset that is not pending raises :class:`CheckpointError`: offsets that
    were never tracked always do, and so do duplicates unless ``allow_duplicate_acks`` —
    then an ack of any offset below the last tracked one that is not pending (acked
    before, or skipped when tracking: the two cannot be told apart without memory per
    record) is ignored and returns False, which suits sources that redeliver.

    Partition keys are any hashable (``3``, ``("topic", 3)``). Thread-safe.
    """

    def __init__(self, *, allow_duplicate_acks: bool = False) -> None:
        self._allow_duplicates = allow_duplicate_acks
        self._parts: dict[Hashable, _Partition] = {}
        self._lock = threading.Lock()

    # -- tracking --------------------------------------------------------------------------

    def track(self, partition: Hashable, offset: int) -> None:
        """Record that ``offset`` was emitted; it must be above every tracked offset."""
        _check_range(partition, offset, offset + 1 if isinstance(offset, int) else offset)
        self.track_range(partition, offset, offset + 1)

    def track_range(self, partition: Hashable, start: int, end: int) -> None:
        """Record that offsets ``start`` to ``end - 1`` were emitted (``start`` above every
        tracked offset of the partition, ``end > start``)."""
        _check_range(partition, start, end)
        with self._lock:
            part = self._parts.get(partition)
            if part is None:
                part = self._parts[partition] = _Partition()
            if part.next_offset is not None and start < part.next_offset:
                raise CheckpointError(
                    f"partition {partition!r}: tracked offsets must increase; offset "
                    f"{part.next_offset - 1} was tracked already, got {start}"
                )
            if part.ends and part.ends[-1] == start:
                part.ends[-1] = end
            else:
                part.starts.append(start)
                part.ends.append(end)
            part.next_offset = end

    # -- acknowledging ---------------------------------------------------------------------

    def ack(self, partition: Hashable, offset: int) -> bool:
        """Acknowledge one offset; True if it was pending (see the class on duplicates)."""
        if type(offset) is not int or offset < 0:
            _check_range(partition, offset, offset)  # raises with the reason
        after = offset + 1
        with self._lock:  # a lean copy of ack_range: this runs once per record
            part = self._parts.get(partition)
            if part is None or part.next_offset is None or after > part.next_offset:
                raise _untracked(partition, part, offset, after)
            starts, ends = part.starts, part.ends
            i = bisect_right(starts, offset) - 1
            if i < 0 or offset >= ends[i]:
                return bool(self._not_pending(partition, offset, after))
            start, end = starts[i], ends[i]
            if start == offset:
                if end == after:
                    del starts[i], ends[i]
                else:
                    starts[i] = after
            elif end == after:
                ends[i] = offset
            else:  # split [start, end) into [start, offset) and [after, end)
                ends[i] = offset
                starts.insert(i + 1, after)
                ends.insert(i + 1, end)
            return True

    def ack_range(self, partition: Hashable, start: int, end: int) -> int:
        """Acknowledge the pending offsets from ``start`` to ``end - 1``; return how many.

        Offsets of the range that are not pending (skipped when tracking, or acked before)
        are passed over. Raises if the range reaches past the last tracked offset, or, unless
        ``allow_duplicate_acks``, if none of it was pending.
        """
        _check_range(partition, start, end)
        with self._lock:
            part = self._parts.get(partition)
            if part is None or part.next_offset is None or end > part.next_offset:
                raise _untracked(partition, part, start, end)
            starts, ends = part.starts, part.ends
            first = bisect_right(ends, start)  # the first range that ends after `start`
            last = first
            acked = 0
            pieces_s: list[int] = []
            pieces_e: list[int] = []
            while last < len(starts) and starts[last] < end:
                s, e = starts[last], ends[last]
                acked += min(e, end) - max(s, start)
                if s < start:
                    pieces_s.append(s)
                    pieces_e.append(start)
                if e > end:
                    pieces_s.append(end)
                    pieces_e.append(e)
                last += 1
            if acked == 0:
                return self._not_pending(partition, start, end)
            starts[first:last] = pieces_s
            ends[first:last] = pieces_e
            return acked

    def _not_pending(self, partition: Hashable, start: int, end: int) -> Literal[0]:
        if self._allow_duplicates:
            return 0
        what = f"offset {start}" if end == start + 1 else f"offsets {start}..{end - 1}"
        raise CheckpointError(
            f"partition {partition!r}: {what} not pending (already acknowledged, or never "
            "tracked); pass allow_duplicate_acks=True if redeliveries are expected"
        )

    # -- reading ---------------------------------------------------------------------------

    def committable(self, partition: Hashable) -> int | None:
        """The next offset to commit, or None if nothing was tracked for ``partition``."""
        with self._lock:
            part = self._parts.get(partition)
            if part is None:
                return None
            return part.starts[0] if part.starts else part.next_offset

    def committable_all(self) -> dict[Hashable, int]:
        """:meth:`committable` of every partition that has tracked offsets."""
        with self._lock:
            out: dict[Hashable, int] = {}
            for key, part in self._parts.items():
                if part.starts:
                    out[key] = part.starts[0]
                elif part.next_offset is not None:
                    out[key] = part.next_offset
            return out

    def pending_count(self, partition: Hashable) -> int:
        """How many tracked offsets of ``partition`` are not acknowledged yet."""
        with self._lock:
            part = self._parts.get(partition)
            if part is None:
                return 0
            return sum(e - s for s, e in zip(part.starts, part.ends, strict=True))

    def range_count(self, partition: Hashable | None = None) -> int:
        """How many ranges of pending offsets are held (for one partition, or in all):
        the tracker's memory is proportional to this."""
        with self._lock:
            if partition is not None:
                part = self._parts.get(partition)
                return 0 if part is None else len(part.starts)
            return sum(len(p.starts) for p in self._parts.values())

    @property
    def partitions(self) -> tuple[Hashable, ...]:
        """The partitions seen, in the order they were first tracked."""
        with self._lock:
            return tuple(self._parts)

    def remove(self, partition: Hashable) -> None:
        """Forget a partition (for example one revoked in a consumer-group rebalance)."""
        with self._lock:
            self._parts.pop(partition, None)


def _check_range(partition: Hashable, start: int, end: int) -> None:
    for value in (start, end):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(
                f"partition {partition!r}: offsets must be ints ≥ 0; got {value!r}"
            )
    if end <= start:
        raise CheckpointError(f"partition {partition!r}: empty offset range {start}..{end - 1}")


def _untracked(
    partition: Hashable, part: _Partition | None, start: int, end: int
) -> CheckpointError:
    last = None if part is None or part.next_offset is None else part.next_offset - 1
    return CheckpointError(
        f"partition {partition!r}: cannot ack offsets {start}..{end - 1}: the last tracked "
        f"offset is {last}"
    )
