"""The connectors' optional libraries: checked when a connector is built, imported when used.

aiokafka, pyiceberg and pylance come with the ``kafka``, ``iceberg`` and ``lance`` extras
of ``tideflow-streaming``. A connector checks in its constructor that its library is
installed (without importing it: a driver that imports lance before Ray forks its processes
gets lance's fork warnings), and imports it where it first uses it. A missing library is a
:class:`~tideflow.core.errors.MissingDependencyError` whose message installs the extra.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from tideflow.core.errors import MissingDependencyError

__all__ = ["check_installed", "install_hint", "require"]

# top-level module → (the distribution that provides it, the extra that installs it)
_OPTIONAL = {
    "aiokafka": ("aiokafka", "kafka"),
    "pyiceberg": ("pyiceberg", "iceberg"),
    "lance": ("pylance", "lance"),
}


def install_hint(extra: str) -> str:
    """``pip install "tideflow-streaming[<extra>]"``."""
    return f'pip install "tideflow-streaming[{extra}]"'


def _missing(module: str) -> MissingDependencyError:
    distribution, extra = _OPTIONAL[module.partition(".")[0]]
    return MissingDependencyError(distribution, install_hint(extra))


def check_installed(module: str) -> None:
    """Raise :class:`MissingDependencyError` unless ``module`` (``"aiokafka"``, ``"pyiceberg"``
    or ``"lance"``) can be imported; it is not imported."""
    if importlib.util.find_spec(module) is None:
        raise _missing(module)


def require(module: str) -> ModuleType:
    """``import module`` (a connector library or one of its submodules, e.g.
    ``"pyiceberg.catalog"``), or :class:`MissingDependencyError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _missing(module) from error
