"""Kafka helpers for the tests' own process: create topics, produce, read group and end
offsets against the local broker (tansu).

Two quirks of that broker shape them: group offsets are read by a consumer of the group
(``committed``), never with the admin client's ``list_consumer_group_offsets`` (the broker
stops answering); end offsets come from the connector's ``end_offsets`` (the high watermark
of a fetch), since ``ListOffsets`` falls short after multi-record batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tideflow.streaming.connectors.kafka import end_offsets
from tideflow.streaming.testing import send_to_topic


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    send_to_topic(bootstrap, topic, [], partitions=partitions)


def produce(bootstrap: str, topic: str, values: list[tuple[int, bytes]]) -> None:
    """Produce ``(partition, value)`` messages, in order."""

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            futures = [await producer.send(topic, v, partition=p) for p, v in values]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(go())


def group_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, Any]:
    """The group's committed offsets, read by a consumer of the group."""

    async def go() -> dict[int, Any]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            return {
                p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)
            }
        finally:
            await consumer.stop()

    return asyncio.run(go())


def partition_ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The partitions' end offsets (high watermarks)."""

    async def go() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            ends = await end_offsets(consumer, tps)
            return {tp.partition: end for tp, end in ends.items()}
        finally:
            await consumer.stop()

    return asyncio.run(go())


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
