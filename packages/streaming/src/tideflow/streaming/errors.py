"""Errors of ``tideflow.streaming``; all derive from :class:`tideflow.core.errors.TideflowError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tideflow.core.errors import ConfigError, TideflowError

__all__ = [
    "ActorError",
    "ConfigError",
    "JobAbortedError",
    "JobAlreadyRunningError",
    "PipelineError",
    "RecordErrors",
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


class ActorError(JobAbortedError):
    """An exception raised inside one of the job's actors (a source's reader, a stage, the
    sink's writer) stopped the job.

    The message is the original exception's message; ``__cause__`` is the original, and a
    note says where it was raised, with the actor-side traceback. An exception of
    Tideflow's own types (a :class:`SinkError` …) is raised as it is instead, with that note.
    """


class JobAlreadyRunningError(StreamingError):
    """Another run of the same job id (checkpoint location and ``job_id``) is live.

    The message names that run (host, process id, start time). Stop it or wait for it to
    end; the lease of a run that was killed lapses on its own.
    """


class RecordErrors(StreamingError):
    """Raised by a batch function to name the rows it could not process.

    ``raise RecordErrors({3: ValueError("prompt too long")}, output=good_rows)``: each named
    row (0-based index in the input batch) goes to the dead-letter output with its error,
    and ``output`` (a table like the function's normal result, or ``None`` for no rows) is
    the batch's result. The batch is not split and retried to find the bad rows, so an
    expensive function (a model) runs once per batch.
    """

    def __init__(self, errors: Mapping[int, BaseException | str], output: Any = None) -> None:
        self.errors = dict(errors)
        self.output = output
        super().__init__(f"{len(self.errors)} record(s) failed")
