"""Errors of ``tideflow.media``; all derive from :class:`tideflow.core.errors.TideflowError`."""

from __future__ import annotations

from tideflow.core.errors import ConfigError, MissingDependencyError, TideflowError

__all__ = [
    "ConfigError",
    "MediaError",
    "MissingDependencyError",
    "SubtitleError",
    "VideoError",
]


class MediaError(TideflowError):
    """Base class of the errors ``tideflow.media`` raises on purpose."""


class VideoError(MediaError):
    """A video cannot be opened, probed or decoded; the message names it and the cause."""


class SubtitleError(MediaError):
    """A subtitle file or stream cannot be parsed; the message names it and the line."""
