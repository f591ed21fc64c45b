"""Reading one Kafka partition: a private consumer per split (manually assigned, no group
membership), messages decoded into rows or dead letters, quiet partitions polled less often.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.streaming.connectors._base import JSON, SplitReader
from tideflow.streaming.connectors._kit import dead_letter
from tideflow.streaming.connectors.kafka._client import (
    close_later,
    close_quietly,
    error_text,
    import_aiokafka,
    run_async,
    start_for,
)
from tideflow.streaming.connectors.kafka._codec import decode_batch, raw_record
from tideflow.streaming.errors import SourceError

if TYPE_CHECKING:
    from tideflow.streaming.connectors.kafka._source import KafkaSource

__all__ = ["KafkaReader", "Partition", "end_offsets", "idle_wait", "is_offset"]

_RETRY_CONNECT_S = 1.0


@dataclass(frozen=True)
class Partition:
    """What a split names (its ``info``): one partition of a topic, and for a bounded source
    the (exclusive) end offset."""

    topic: str
    partition: int
    end: int | None = None

    @property
    def split_id(self) -> str:
        return f"{self.topic}:{self.partition}"

    def to_json(self) -> dict[str, JSON]:
        return {"topic": self.topic, "partition": self.partition, "end": self.end}

    @classmethod
    def of(cls, info: JSON) -> Partition | None:
        """A split's ``info`` read back; None when it names no topic and partition."""
        if not isinstance(info, dict):
            return None
        topic, partition = info.get("topic"), info.get("partition")
        if is_offset(partition) and isinstance(topic, str):
            return cls(topic, partition, info.get("end"))
        return None


class KafkaReader(SplitReader):
    """One partition, read by a private consumer (manually assigned, no group membership)."""

    def __init__(
        self, source: KafkaSource, part: Partition, *, offset: int | None, group: str
    ) -> None:
        self._source = source
        self._part = part
        self._end = part.end
        self._next = offset
        self._group = group
        self._consumer: Any = None
        self._tp: Any = None
        self._first_attempt: float | None = None
        self._retry_at = 0.0
        self._idle_polls = 0  # empty polls in a row
        self._wake_at = 0.0  # no poll before this (monotonic time of this process)
        self._dead: list[dict[str, JSON]] = []
        self._log = get_logger("tideflow.streaming.kafka", source=repr(source), split=part.split_id)

    @property
    def finished(self) -> bool:
        return self._end is not None and self._next is not None and self._next >= self._end

    def snapshot(self) -> JSON:
        return None if self._next is None else {"offset": self._next}

    def dead_letters(self) -> list[dict[str, JSON]]:
        taken, self._dead = self._dead, []
        return taken

    def next_awake(self) -> float | None:
        """After an empty poll, a failed read or a failed connect: the seconds left before
        the next poll is worth making; ``None`` (at once) while messages come."""
        wake = self._wake_at if self._consumer is not None else self._retry_at
        left = wake - time.monotonic()
        return left if left > 0 else None

    def read(self, max_rows: int) -> pa.Table | None:
        if self.finished or (self._end is not None and self._end <= 0):
            self._next = self._next if self._next is not None else 0
            return None
        if self._consumer is None and not self._connect():
            return None
        if time.monotonic() < self._wake_at:
            return None  # a read asked for ahead, during the wait: not worth a poll
        assert self._next is not None
        want = max_rows if self._end is None else min(max_rows, self._end - self._next)
        try:
            messages = run_async(self._fetch(want), self._source.poll_timeout_s + 30)
        except Exception as error:  # a stalled or restarting broker: try again later
            self._log.warning("kafka.read_failed", error=self._text(error))
            self._wake_at = time.monotonic() + _RETRY_CONNECT_S
            return None
        messages = [m for m in messages if m.offset >= self._next]
        if self._end is not None:
            messages = [m for m in messages if m.offset < self._end]
        if not messages:
            self._idle_polls += 1
            wait = idle_wait(
                self._idle_polls, self._source.poll_timeout_s, self._source.max_idle_wait_s
            )
            self._wake_at = time.monotonic() + wait
            return None
        self._idle_polls, self._wake_at = 0, 0.0
        self._next = messages[-1].offset + 1
        table, failed = decode_batch(messages, self._source.value_format)
        for message, problem in failed:
            self._dead.append(dead_letter(problem, raw_record(message), offset=message.offset))
        if failed:
            self._log.info("kafka.undecodable", count=len(failed))
        return table if table is not None and table.num_rows else None

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            close_later(consumer)  # not waited for: the broker may be stalled

    # -- internals -------------------------------------------------------------------------

    def _text(self, error: BaseException) -> str:
        return error_text(error, self._source.client_options)

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._retry_at:
            return False
        if self._first_attempt is None:
            self._first_attempt = now
        problem = ""
        try:
            self._consumer = run_async(self._open(), self._source.request_timeout_s)
        except Exception as error:
            problem = self._text(error)
        if self._consumer is None:
            waited = now - self._first_attempt
            if waited >= self._source.connect_timeout_s:
                message = (
                    f"{self._source!r}: cannot read {self._part.split_id} from "
                    f"{self._source.bootstrap_servers} (tried for {waited:.0f} s): {problem}"
                )
                raise SourceError(message)
            self._log.warning("kafka.connect_failed", error=problem)
            self._retry_at = now + _RETRY_CONNECT_S
            return False
        self._log.info("kafka.reader_started", offset=self._next)
        return True

    async def _open(self) -> Any:
        aiokafka = import_aiokafka()
        start = self._source.start
        kwargs: dict[str, Any] = {
            "auto_offset_reset": "latest" if start == "latest" else "earliest"
        }
        if start == "committed" and self._next is None:
            kwargs["group_id"] = self._group
        consumer = await start_for(self._source, aiokafka.AIOKafkaConsumer, **kwargs)
        try:
            self._tp = tp = aiokafka.TopicPartition(self._part.topic, self._part.partition)
            consumer.assign([tp])
            if self._next is not None:
                consumer.seek(tp, self._next)
            elif start == "committed" and (committed := await consumer.committed(tp)) is not None:
                consumer.seek(tp, committed)
            elif start == "latest":
                consumer.seek(tp, (await end_offsets(consumer, [tp]))[tp])
            else:
                await consumer.seek_to_beginning(tp)
            self._next = int(await consumer.position(tp))
        except BaseException:
            await close_quietly(consumer)
            raise
        return consumer

    async def _fetch(self, want: int) -> list[Any]:
        consumer, tp = self._consumer, self._tp
        timeout_ms = int(self._source.poll_timeout_s * 1000)
        batches = await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=want)
        messages = list(batches.get(tp, []))
        if not messages and self._end is not None:
            # Offsets may have gaps (compaction, transaction markers): skip to the position.
            position = int(await consumer.position(tp))
            if self._next is not None and position > self._next:
                self._next = min(position, self._end)
        return messages


async def end_offsets(consumer: Any, tps: list[Any]) -> dict[Any, int]:
    """The end offset (high watermark) of each partition; ``consumer`` is assigned ``tps``.

    ``ListOffsets`` alone is not enough: the local tansu broker answers it with the last
    record batch's base offset + 1, which is short of the end when that batch holds several
    records. The high watermark of a fetch response is right there and equal to it on Kafka,
    so one fetch from just before the listed end settles it.
    """
    listed = await consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(listed[tp] - 1, 0))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    marks: dict[Any, int | None] = {}
    while True:
        await consumer.getmany(*tps, timeout_ms=100, max_records=1)
        marks = {tp: consumer.highwater(tp) for tp in tps}
        if all(m is not None for m in marks.values()) or loop.time() > deadline:
            break
    return {tp: max(int(listed[tp]), int(marks[tp] or 0)) for tp in tps}


def idle_wait(empty_polls: int, first_s: float, max_s: float) -> float:
    """The wait before polling a partition again after ``empty_polls`` empty polls in a row
    (≥ 1): ``first_s``, doubling with each, at most ``max_s``."""
    return min(max_s, first_s * 2.0 ** min(empty_polls - 1, 60))


def is_offset(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
