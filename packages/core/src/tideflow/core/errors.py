"""The error hierarchy of ``tideflow.core``.

Every error that Tideflow raises on purpose derives from :class:`TideflowError`, so callers
can catch one type. Messages say what was expected and what was seen.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointLocationError",
    "CheckpointNotFoundError",
    "ConfigError",
    "EpochAbortedError",
    "MissingDependencyError",
    "PoolClosedError",
    "SchedulerError",
    "TideflowError",
    "WorkFailedError",
]


class TideflowError(Exception):
    """Base class of every error Tideflow raises on purpose."""


class ConfigError(TideflowError, ValueError):
    """A configuration value is invalid; the message names the field and what is allowed."""


class MissingDependencyError(TideflowError, ImportError):
    """An optional dependency is not installed; the message carries the install hint."""

    def __init__(self, module: str, extra_hint: str) -> None:
        message = f"{module!r} is not installed; install it with: {extra_hint}"
        super().__init__(message)
        self.module = module
        self.extra_hint = extra_hint

    def __reduce__(self) -> tuple[type[MissingDependencyError], tuple[str, str]]:
        # Raised inside actors: Ray pickles it back to the driver, keeping its type.
        return (type(self), (self.module, self.extra_hint))


class CheckpointError(TideflowError):
    """A checkpoint could not be written, read or committed."""


class CheckpointLocationError(CheckpointError):
    """The checkpoint location cannot be reached, listed, read or written (an unreachable
    endpoint, a full or read-only disk, a path under a file); ``__cause__`` is the I/O error.

    ``CheckpointLocationError("write checkpoint 3 to", uri, str(error))`` reads
    ``cannot write checkpoint 3 to the checkpoint location '<uri>': <reason> (expected …)``,
    with credentials in ``uri`` and ``reason`` masked.
    """

    EXPECTED = "a directory (or bucket prefix) that this process can list, read and write"

    def __init__(self, action: str, uri: str, reason: str) -> None:
        from tideflow.core.uri import redact  # here: tideflow.core.uri imports this module

        self.action, self.uri, self.reason = action, redact(uri), redact(reason)
        super().__init__(
            f"cannot {action} the checkpoint location {self.uri!r}: {self.reason} "
            f"(expected {self.EXPECTED})"
        )

    def __reduce__(self) -> tuple[type[CheckpointLocationError], tuple[str, str, str]]:
        return (type(self), (self.action, self.uri, self.reason))


class CheckpointNotFoundError(CheckpointError, LookupError):
    """No complete checkpoint exists with the requested id."""


class EpochAbortedError(CheckpointError):
    """An epoch was aborted (explicitly, by timeout, or because its state could not be saved)."""


class SchedulerError(TideflowError):
    """The actor pool could not run the work."""


class PoolClosedError(SchedulerError):
    """Work was submitted to (or was still queued in) an actor pool that was shut down."""


class WorkFailedError(SchedulerError):
    """Work failed after all retries; ``__cause__`` is the original error."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
