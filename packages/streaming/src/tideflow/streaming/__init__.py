"""Tideflow streaming: one engine for bounded and unbounded data, checkpointed, exactly-once.

>>> from tideflow.streaming import Pipeline, CheckpointConfig
>>> from tideflow.streaming.connectors import ParquetSource, ParquetSink
"""

from __future__ import annotations

from tideflow.streaming._metrics import JobResult, StageMetrics
from tideflow.streaming._plan import CheckpointConfig
from tideflow.streaming.errors import (
    ActorError,
    JobAbortedError,
    JobAlreadyRunningError,
    PipelineError,
    RecordErrors,
    SinkError,
    SourceError,
    StreamingError,
)
from tideflow.streaming.pipeline import Job, Pipeline

__all__ = [
    # building and running
    "CheckpointConfig",
    "Job",
    "Pipeline",
    # results
    "JobResult",
    "StageMetrics",
    # errors
    "ActorError",
    "JobAbortedError",
    "JobAlreadyRunningError",
    "PipelineError",
    "RecordErrors",
    "SinkError",
    "SourceError",
    "StreamingError",
]
