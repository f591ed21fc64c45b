"""Errors of the OCR app; all derive from :class:`tideflow.core.errors.TideflowError`.

:class:`VideoError` is :class:`tideflow.media.errors.VideoError` itself: the library's
sources and decoders raise it, and every app catches the same type.
"""

from __future__ import annotations

from tideflow.core.errors import ConfigError, TideflowError
from tideflow.media.errors import VideoError

__all__ = ["ConfigError", "OcrError", "VideoError"]


class OcrError(TideflowError):
    """Base class of the errors the OCR app raises on purpose."""
