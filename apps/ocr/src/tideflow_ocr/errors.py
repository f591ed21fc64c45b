"""Errors of the OCR app; all derive from :class:`tideflow.core.errors.TideflowError`."""

from __future__ import annotations

from tideflow.core.errors import ConfigError, TideflowError

__all__ = ["ConfigError", "OcrError", "VideoError"]


class OcrError(TideflowError):
    """Base class of the errors the OCR app raises on purpose."""


class VideoError(OcrError):
    """A video cannot be opened, probed or decoded; the message names it and the cause."""
