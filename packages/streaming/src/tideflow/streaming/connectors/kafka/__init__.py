"""Kafka source and sink (aiokafka), for any Kafka-protocol broker.

>>> source = KafkaSource(topics=["events"], bootstrap_servers="broker:9092", value_format="json")
>>> sink = KafkaSink(topic="enriched", bootstrap_servers="broker:9092", value_format="json")

**Source.** Each partition of each topic is a split (``"topic:partition"``); its resume
state is ``{"offset": next offset to read}``. Rows carry ``topic``, ``partition``,
``offset``, ``timestamp``, ``key`` and the decoded value (``value`` for bytes, an object's
fields as columns for JSON and Arrow IPC). A message that does not decode goes to the job's
dead-letter output with its coordinates; the job goes on. Once a checkpoint is durable the
driver commits its offsets to the consumer group (:meth:`KafkaSource.commit_positions`),
so ordinary Kafka tooling shows the lag; the checkpoint, not the group, is what a rerun
resumes from. Works in epoch mode and in record-level ACK mode (``offset_column="offset"``).
``topic_priorities`` ranks topics for reading: when the engine cannot read every partition
at once, the partitions of higher-priority topics are read first (an ``alerts`` topic ahead
of a backlog elsewhere); partitions of one priority take turns. A quiet partition is polled
less and less often (``max_idle_wait_s``), through the reader's ``next_awake``: the I/O
actor that polls it also runs the other splits' reads and the sink's writes.
A topic that does not exist when the job starts fails it, unless
``allow_missing_topics=True``. Unbounded by default (new partitions, and with
``allow_missing_topics`` new topics, are picked up on rediscovery); bounded with
``until="now"`` (the end offsets at the job's first discovery, kept under the job's
directory so that a rerun ends at the same place) or explicit end offsets.

**Sink.** See :class:`KafkaSink`: messages of an epoch are staged durably at pre-commit and
produced when the epoch's checkpoint is durable, in one transaction per epoch where the
broker supports transactions, otherwise at least once with a dedupe key header.

Connection options (SASL, SSL) pass through ``client_options`` to aiokafka; secret values
(``sasl_plain_password``, tokens) never appear in logs, reprs or errors.

**Driver-side clients.** Discovery, end offsets and offset commits use clients cached in
the driver process (shared by sources with the same servers and options); the engine closes
them when a job ends (:meth:`KafkaSource.close`, also ``with KafkaSource(...) as source``).

**Modules.** ``_source`` (discovery, offset commits), ``_reader`` (one partition's reads),
``_sink`` (staging and producing), ``_codec`` (messages ↔ rows), ``_client`` (aiokafka on a
private event loop, connection options and secrets, the driver's client cache).
"""

from __future__ import annotations

from tideflow.streaming.connectors.kafka._reader import end_offsets as end_offsets
from tideflow.streaming.connectors.kafka._reader import idle_wait as idle_wait
from tideflow.streaming.connectors.kafka._sink import KafkaSink
from tideflow.streaming.connectors.kafka._source import KafkaSource

__all__ = ["KafkaSink", "KafkaSource"]
