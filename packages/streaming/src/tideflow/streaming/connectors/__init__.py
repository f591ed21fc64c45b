"""Connectors: the source and sink contracts, and the file sources and sinks.

>>> from tideflow.streaming.connectors import ParquetSource, ParquetSink
>>> source = ParquetSource("s3://bucket/videos/", files_per_group=16)
>>> sink = ParquetSink("s3://bucket/out/")
"""

from __future__ import annotations

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
]
