# --8<-- [start:example]
"""Kafka: a topic of JSON clicks to Parquet, read up to the end offsets seen at the start."""

import asyncio
import json
import tempfile

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import KafkaSource, ParquetSink
from tideflow.streaming.testing import kafka_broker


async def produce(broker: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    await admin.create_topics([NewTopic("clicks", num_partitions=3, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    for i in range(300):
        await producer.send(
            "clicks", json.dumps({"user": i % 7, "ms": i}).encode(), partition=i % 3
        )
    await producer.send("clicks", b"{not json", partition=0)  # goes to the dead letters
    await producer.stop()


def add_seconds(batch: pa.Table) -> pa.Table:
    return batch.append_column("s", pc.divide(batch["ms"], 1000.0))


with kafka_broker() as broker:  # a local Kafka-protocol broker (`make broker` runs one too)
    servers = broker.bootstrap_servers
    asyncio.run(produce(servers))
    root = tempfile.mkdtemp()
    source = KafkaSource(
        topics="clicks", bootstrap_servers=servers, value_format="json", until="now"
    )
    result = (
        Pipeline.read(source, batch_size=100)
        .map_batches(add_seconds)
        .write(ParquetSink(f"{root}/out"))
        .run(job_id="clicks", checkpoint=CheckpointConfig(uri=f"{root}/ckpt", interval_s=1.0))
    )
print(pq.read_table(f"{root}/out").num_rows, "rows,", result.dead_letters, "dead letter")
# 300 rows, 1 dead letter (in <root>/ckpt/clicks/dead_letters/, with topic, partition, offset)
assert (pq.read_table(f"{root}/out").num_rows, result.dead_letters) == (300, 1)
# --8<-- [end:example]
