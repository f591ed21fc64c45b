"""Errors of ``tideflow.streaming``; all derive from :class:`tideflow.core.errors.TideflowError`."""

from __future__ import annotations

from tideflow.core.errors import ConfigError, TideflowError

__all__ = [
    "ConfigError",
    "JobAbortedError",
    "PipelineError",
    "SinkError",
    "SourceError",
    "StreamingError",
]


class StreamingError(TideflowError):
    """Base of the streaming engine's errors."""


class PipelineError(StreamingError):
    """The pipeline is malformed (no source, no sink, a stage after the sink, …)."""


class SourceError(StreamingError):
    """A source could not list, open or read its splits; the message names the source."""


class SinkError(StreamingError):
    """A sink could not write, pre-commit, commit or abort; the message names the sink."""


class JobAbortedError(StreamingError):
    """The job stopped on an unrecoverable error; its last checkpoint is intact for a rerun."""
