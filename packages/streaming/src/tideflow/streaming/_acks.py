"""Record-level ACK mode: which offsets of each split may be checkpointed.

In ACK mode a checkpoint is not a barrier through the pipeline but the contiguous prefix of
acknowledged offsets per split. Each read of a split is an :class:`Origin`: the offsets it
covered (from the end of the split's previous read, so that gaps in the offsets — Kafka's
transaction markers, compacted records — never hold the prefix back). The executor holds
an origin while anything derived from its rows is queued, in a stage, or being written;
when the last hold is released the origin is acknowledged in the
:class:`~tideflow.core.checkpoint.AckTracker`, in any order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tideflow.core.checkpoint import AckTracker
from tideflow.streaming._plan import Plan
from tideflow.streaming.connectors._base import Source, Split
from tideflow.streaming.errors import ConfigError

__all__ = ["AckLedger", "Origin", "check_ack_mode"]


def check_ack_mode(plan: Plan) -> None:
    """Raise :class:`ConfigError` unless ``plan`` can run in ACK mode."""
    source = plan.source
    if source.offset_column is None:
        message = (
            f'CheckpointConfig(mode="ack") needs a source with per-record offsets '
            f"(offset_column, e.g. KafkaSource); {type(source).__name__} has none: "
            'use mode="epoch"'
        )
        raise ConfigError(message)
    keyed = [spec.name for spec in plan.stages if spec.kind == "keyed"]
    if keyed:
        message = (
            f'CheckpointConfig(mode="ack") cannot run keyed stateful stages ({keyed}): their '
            'state is consistent only at epoch barriers; use mode="epoch"'
        )
        raise ConfigError(message)
    if plan.sink_writers > 1:
        message = (
            f'CheckpointConfig(mode="ack") commits each write as it is made: one writer; got '
            f"writers={plan.sink_writers}"
        )
        raise ConfigError(message)
    fused = [spec.name for spec in plan.stages if spec.fused]
    if fused:
        message = (
            f'CheckpointConfig(mode="ack") cannot run fused stages ({fused}): they run in the '
            'I/O actor, outside the per-read acknowledgement; drop fused=True or use mode="epoch"'
        )
        raise ConfigError(message)
    rebatched = [spec.name for spec in plan.stages if spec.batch_size is not None]
    if rebatched:
        message = (
            f'CheckpointConfig(mode="ack") cannot re-batch ({rebatched} set batch_size): a '
            'record is acknowledged with the read it came in; use mode="epoch"'
        )
        raise ConfigError(message)


@dataclass(eq=False)
class Origin:
    """One read of a split, acknowledged once everything derived from it is written or
    dead-lettered."""

    split_id: str
    start: int
    """Offsets ``start`` to ``end - 1`` (gaps since the previous read included)."""
    end: int
    pending: int = 0
    """Holds: batches derived from this read not yet written."""


@dataclass(eq=False)
class _SplitAcks:
    split: Split
    base_state: Any  # where this run opened the split (its restored position)
    first: int | None = None  # the first offset tracked in this run
    next: int | None = None  # the offset after the last one tracked


class AckLedger:
    """The origins in flight and each split's acknowledged prefix (driver side)."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._tracker = AckTracker()
        self._splits: dict[str, _SplitAcks] = {}
        self._outstanding: dict[int, Origin] = {}

    def open(self, split: Split, state: Any) -> None:
        """Follow ``split``, opened at ``state`` (``None``: its start)."""
        self._splits[split.split_id] = _SplitAcks(split=split, base_state=state)

    @property
    def outstanding(self) -> int:
        """Reads not acknowledged yet."""
        return len(self._outstanding)

    def track(self, split_id: str, offsets: tuple[int, int] | None) -> Origin | None:
        """Record a read that covered offsets ``offsets[0]..offsets[1]`` (None: no records)."""
        if offsets is None:
            return None
        acks = self._splits[split_id]
        low, high = int(offsets[0]), int(offsets[1])
        start = low if acks.next is None else min(acks.next, low)
        if acks.first is None:
            acks.first = start
        self._tracker.track_range(split_id, start, high + 1)
        acks.next = high + 1
        origin = Origin(split_id=split_id, start=start, end=high + 1)
        self._outstanding[id(origin)] = origin
        return origin

    def ack(self, origin: Origin) -> None:
        """Everything derived from ``origin`` was written (or dead-lettered)."""
        del self._outstanding[id(origin)]
        self._tracker.ack_range(origin.split_id, origin.start, origin.end)

    def checkpoint(self, finished_reading: Iterable[str]) -> dict[str, Any]:
        """The source's checkpoint state: each split's position after its acknowledged
        prefix, and the splits read to the end with nothing left unacknowledged."""
        positions: dict[str, Any] = {}
        for key, acks in self._splits.items():
            committable = self._tracker.committable(key) if acks.first is not None else None
            if committable is None or committable == acks.first:
                state = acks.base_state  # nothing acknowledged in this run yet
            else:
                state = self._source.position_after(acks.split, committable - 1)
            if state is not None:
                positions[key] = state
        finished = sorted(key for key in finished_reading if not self._pending(key))
        return {"positions": positions, "finished": finished}

    def _pending(self, split_id: str) -> int:
        if split_id not in self._tracker.partitions:
            return 0
        return self._tracker.pending_count(split_id)
