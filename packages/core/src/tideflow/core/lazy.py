"""Lazy package exports (PEP 562): a package names what it re-exports, and each name's
module is imported on first use.

Every process that runs one of our actors imports the package of that actor's class; an
eager ``__init__`` would make it import everything else too (the planner, the connectors,
the autoscaler…): ~0.1–0.2 s of CPU per actor, at the start of a job, when the cores are
busiest starting actors. With lazy exports, ``import tideflow.streaming._worker`` costs
what the worker itself needs.

In a package's ``__init__``, beside its ``__all__`` and ``TYPE_CHECKING`` imports::

    _EXPORTS = {"Pipeline": ".pipeline", "CheckpointConfig": "._plan"}
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], names: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    ``exports`` maps each exported name to the module that defines it (absolute, or
    relative to ``package`` when it starts with a dot). A name is imported once and then
    kept in the package's namespace. Attribute access to a submodule that is not imported
    yet imports it, as an eager package would have. ``names`` (the package's ``__all__``)
    joins ``dir()``.
    """
    table = dict(exports)
    listed = sorted(set(names) | set(table))

    def __getattr__(name: str) -> Any:
        namespace = vars(sys.modules[package])
        where = table.get(name)
        if where is not None:
            value = getattr(importlib.import_module(where, package), name)
            namespace[name] = value
            return value
        if not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}"):
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(listed))

    return __getattr__, __dir__
