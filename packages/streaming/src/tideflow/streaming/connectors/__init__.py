"""Connectors: the source and sink contracts, files, Kafka, Iceberg and Lance.

>>> from tideflow.streaming.connectors import ParquetSource, ParquetSink
>>> source = ParquetSource("s3://bucket/videos/", files_per_group=16)
>>> sink = ParquetSink("s3://bucket/out/")

Kafka, Iceberg and Lance connectors are imported on first use, so that a job that reads
files does not pay for aiokafka, pyiceberg and lance in every actor. Those libraries come
with the extras of the same names (``pip install "tideflow-streaming[kafka,iceberg,lance]"``);
building a connector without its library raises
:class:`~tideflow.core.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tideflow.streaming.connectors._base import (
    JSON,
    JobContext,
    Sink,
    SinkWriter,
    Source,
    Split,
    SplitReader,
)
from tideflow.streaming.connectors.files import JSONLSink, JSONLSource, ParquetSink, ParquetSource

if TYPE_CHECKING:
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

_LAZY = {
    "KafkaSink": "kafka",
    "KafkaSource": "kafka",
    "IcebergSink": "iceberg",
    "IcebergSource": "iceberg",
    "load_catalog": "iceberg",
    "LanceSink": "lance",
    "LanceSource": "lance",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
