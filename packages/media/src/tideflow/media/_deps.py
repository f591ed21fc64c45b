"""Optional dependencies: import them on first use, or fail with the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from tideflow.media.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """``import module``, or raise :class:`MissingDependencyError` whose message says
    ``pip install "tideflow-media[<extra>]"``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pass
    raise MissingDependencyError(module, f'pip install "tideflow-media[{extra}]"')
