"""Tideflow streaming: one engine for bounded and unbounded data, checkpointed, exactly-once.

>>> from tideflow.streaming import Pipeline, CheckpointConfig
>>> from tideflow.streaming.connectors import ParquetSource, ParquetSink

The names load on first use (:mod:`tideflow.core.lazy`): an actor process that imports one
module of this package pays for that module only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideflow.core.lazy import lazy_exports

if TYPE_CHECKING:
    from tideflow.streaming._metrics import (
        JobResult,
        StageMetrics,
    )
    from tideflow.streaming._plan import (
        CheckpointConfig,
    )
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
    from tideflow.streaming.pipeline import (
        Job,
        Pipeline,
    )

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

_EXPORTS = {
    "JobResult": "._metrics",
    "StageMetrics": "._metrics",
    "CheckpointConfig": "._plan",
    "ActorError": ".errors",
    "JobAbortedError": ".errors",
    "JobAlreadyRunningError": ".errors",
    "PipelineError": ".errors",
    "RecordErrors": ".errors",
    "SinkError": ".errors",
    "SourceError": ".errors",
    "StreamingError": ".errors",
    "Job": ".pipeline",
    "Pipeline": ".pipeline",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
