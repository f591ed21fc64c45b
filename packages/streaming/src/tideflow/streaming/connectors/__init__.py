"""Connectors: the source and sink contracts, files, Kafka, Iceberg and Lance.

>>> from tideflow.streaming.connectors import ParquetSource, ParquetSink
>>> source = ParquetSource("s3://bucket/videos/", files_per_group=16)
>>> sink = ParquetSink("s3://bucket/out/")

The connectors are imported on first use (:mod:`tideflow.core.lazy`), so that an actor pays
only for the connector it runs: a job that reads files does not import aiokafka, pyiceberg
and lance. Those libraries come
with the extras of the same names (``pip install "tideflow-streaming[kafka,iceberg,lance]"``);
building a connector without its library raises
:class:`~tideflow.core.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideflow.core.lazy import lazy_exports
from tideflow.streaming.connectors._base import (
    JSON,
    JobContext,
    Sink,
    SinkWriter,
    Source,
    Split,
    SplitReader,
)

if TYPE_CHECKING:
    from tideflow.streaming.connectors.files import (
        JSONLSink,
        JSONLSource,
        ParquetSink,
        ParquetSource,
    )
    from tideflow.streaming.connectors.iceberg import IcebergSink, IcebergSource, load_catalog
    from tideflow.streaming.connectors.kafka import KafkaSink, KafkaSource
    from tideflow.streaming.connectors.lance import LanceSink, LanceSource

__all__ = [
    # contracts
    "JSON",
    "JobContext",
    "Sink",
    "SinkWriter",
    "Source",
    "Split",
    "SplitReader",
    # files
    "JSONLSink",
    "JSONLSource",
    "ParquetSink",
    "ParquetSource",
    # Kafka
    "KafkaSink",
    "KafkaSource",
    # Iceberg
    "IcebergSink",
    "IcebergSource",
    "load_catalog",
    # Lance
    "LanceSink",
    "LanceSource",
]

_EXPORTS = {
    "JSONLSink": ".files",
    "JSONLSource": ".files",
    "ParquetSink": ".files",
    "ParquetSource": ".files",
    "KafkaSink": ".kafka",
    "KafkaSource": ".kafka",
    "IcebergSink": ".iceberg",
    "IcebergSource": ".iceberg",
    "load_catalog": ".iceberg",
    "LanceSink": ".lance",
    "LanceSource": ".lance",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
