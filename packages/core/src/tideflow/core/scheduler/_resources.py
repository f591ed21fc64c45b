"""What one actor of a pool asks the cluster for."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tideflow.core.errors import ConfigError

__all__ = ["ResourceRequest"]

_RESERVED = ("CPU", "GPU", "memory", "object_store_memory")


def _check_quantity(field_name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        message = f"ResourceRequest.{field_name} must be a number >= 0; got {value!r}"
        raise ConfigError(message)
    if not math.isfinite(value) or value < 0:
        message = f"ResourceRequest.{field_name} must be a finite number >= 0; got {value!r}"
        raise ConfigError(message)
    if value > 1 and value != int(value):
        message = (
            f"ResourceRequest.{field_name}: quantities above 1 must be whole numbers "
            f"(Ray only shares a unit fractionally); got {value!r}"
        )
        raise ConfigError(message)
    return float(value)


@dataclass(frozen=True, kw_only=True)
class ResourceRequest:
    """The resources each actor of a pool reserves while it lives.

    Ray places an actor only on a node that has all of them free; an actor that cannot be
    placed stays pending (it still counts in the pool's size) until resources free up.

    >>> ResourceRequest(num_cpus=0.5, resources={"accel": 1}).to_ray_options()
    {'num_cpus': 0.5, 'num_gpus': 0.0, 'resources': {'accel': 1.0}}
    """

    num_cpus: float = 1
    """Logical CPUs per actor; fractions share a CPU (0 lets any number of actors fit)."""
    num_gpus: float = 0
    """GPUs per actor; a fraction (e.g. 0.5) shares one GPU, above 1 must be whole."""
    accelerator_type: str | None = None
    """Only place the actor on nodes with this accelerator (e.g. ``"A100"``, ``"H100"``)."""
    memory: int | None = None
    """Heap memory to reserve, in bytes (a scheduling hint; Ray does not enforce it)."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """Custom resources by name (e.g. ``{"accel": 1}``), as declared by the cluster's nodes."""
    label_selector: Mapping[str, str] = field(default_factory=dict)
    """Node labels the actor's node must have (Ray label selectors, e.g. ``{"pool":
    "online"}``; a value may be ``"!x"``, ``"in(a,b)"``, ``"!in(a,b)"``), as declared by
    the cluster's nodes (``ray start --labels``, KubeRay ``rayStartParams``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_cpus", _check_quantity("num_cpus", self.num_cpus))
        object.__setattr__(self, "num_gpus", _check_quantity("num_gpus", self.num_gpus))
        if self.accelerator_type is not None and (
            not isinstance(self.accelerator_type, str) or not self.accelerator_type.strip()
        ):
            message = (
                "ResourceRequest.accelerator_type must be a non-empty string such as 'A100' "
                f"or None; got {self.accelerator_type!r}"
            )
            raise ConfigError(message)
        if self.memory is not None and (
            isinstance(self.memory, bool) or not isinstance(self.memory, int) or self.memory <= 0
        ):
            message = (
                "ResourceRequest.memory must be a positive int (bytes) or None; "
                f"got {self.memory!r}"
            )
            raise ConfigError(message)
        if not isinstance(self.resources, Mapping):
            message = (
                f"ResourceRequest.resources must be a mapping name → quantity; "
                f"got {self.resources!r}"
            )
            raise ConfigError(message)
        checked: dict[str, float] = {}
        for name, quantity in self.resources.items():
            if not isinstance(name, str) or not name:
                message = (
                    f"ResourceRequest.resources: names must be non-empty strings; got {name!r}"
                )
                raise ConfigError(message)
            if name in _RESERVED:
                message = (
                    f"ResourceRequest.resources: {name!r} is reserved; use num_cpus, num_gpus "
                    "or memory instead"
                )
                raise ConfigError(message)
            checked[name] = _check_quantity(f"resources[{name!r}]", quantity)
        object.__setattr__(self, "resources", MappingProxyType(checked))
        labels = self.label_selector
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in labels.items()
        ):
            message = (
                "ResourceRequest.label_selector must map label names to non-empty strings "
                f"(e.g. {{'pool': 'online'}}); got {labels!r}"
            )
            raise ConfigError(message)
        object.__setattr__(self, "label_selector", MappingProxyType(dict(labels)))

    def __hash__(self) -> int:
        return hash(
            (
                self.num_cpus,
                self.num_gpus,
                self.accelerator_type,
                self.memory,
                tuple(sorted(self.resources.items())),
                tuple(sorted(self.label_selector.items())),
            )
        )

    def bundle(self) -> dict[str, float]:
        """The request as a Ray resource bundle (``CPU``, ``GPU``, ``memory`` and the custom
        names; zero amounts left out), the shape an autoscaler plans nodes for.

        >>> ResourceRequest(num_cpus=0.5, resources={"accel": 1}).bundle()
        {'CPU': 0.5, 'accel': 1.0}
        """
        amounts = {"CPU": float(self.num_cpus), "GPU": float(self.num_gpus)}
        if self.memory is not None:
            amounts["memory"] = float(self.memory)
        amounts.update(self.resources)
        return {name: amount for name, amount in amounts.items() if amount > 0}

    def to_ray_options(self) -> dict[str, Any]:
        """The keyword arguments for ``ray.remote(cls).options(...)``; unset fields are left out."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.accelerator_type is not None:
            options["accelerator_type"] = self.accelerator_type
        if self.memory is not None:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.label_selector:
            options["label_selector"] = dict(self.label_selector)
        return options
