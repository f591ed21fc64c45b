"""The values of the checkpoint API: ids (monotonic epochs) and checkpoint descriptions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tideflow.core.errors import ConfigError

__all__ = ["Checkpoint", "CheckpointId", "CheckpointInfo", "ObjectInfo", "ObjectKind"]

ObjectKind = Literal["bytes", "json", "arrow_table", "arrow_batch"]
"""How a state object is encoded in its file."""

_DIGITS = 20
_MAX = 10**_DIGITS - 1
_DIR_PREFIX = "chk-"
_DIR_RE = re.compile(rf"^{_DIR_PREFIX}(\d{{{_DIGITS}}})$")


@dataclass(frozen=True, order=True)
class CheckpointId:
    """One checkpoint epoch: an integer ≥ 0, ordered, hashable, usable wherever an int is.

    >>> CheckpointId(42).dir_name
    'chk-00000000000000000042'
    >>> CheckpointId(42).next()
    CheckpointId(43)
    >>> int(CheckpointId(7))
    7

    The value is the only field, so it may be passed positionally. Ids compare with ids,
    not with plain ints; :meth:`of` turns an int into an id (and leaves an id as it is).
    """

    value: int
    """The epoch number: an int from 0 to 10**20 - 1 (so directory names sort as numbers)."""

    def __post_init__(self) -> None:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _MAX:
            raise ConfigError(
                f"CheckpointId must be an int from 0 to {_MAX}; got {v!r} ({type(v).__name__})"
            )

    @classmethod
    def of(cls, value: int | CheckpointId) -> CheckpointId:
        """Return ``value`` as an id: an id unchanged, an int converted (and validated)."""
        return value if isinstance(value, CheckpointId) else cls(value)

    @classmethod
    def from_dir_name(cls, name: str) -> CheckpointId | None:
        """Parse a directory name made by :attr:`dir_name`; None if ``name`` is not one."""
        match = _DIR_RE.match(name)
        return cls(int(match.group(1))) if match else None

    @property
    def dir_name(self) -> str:
        """The directory of this checkpoint in a store: ``chk-`` and 20 zero-padded digits."""
        return f"{_DIR_PREFIX}{self.value:0{_DIGITS}d}"

    def next(self) -> CheckpointId:
        """The id that follows this one."""
        return CheckpointId(self.value + 1)

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"CheckpointId({self.value})"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, kw_only=True)
class ObjectInfo:
    """One state object of a checkpoint, as its manifest records it."""

    name: str
    """The name it was saved under."""
    kind: ObjectKind
    """How it is encoded: raw ``bytes``, ``json`` (UTF-8), or an Arrow IPC file holding a
    table (``arrow_table``) or one record batch (``arrow_batch``)."""
    file: str
    """Its file name inside the checkpoint directory."""
    size: int
    """Its encoded size in bytes."""
    sha256: str
    """The hex SHA-256 of its encoded bytes, checked on load."""


@dataclass(frozen=True, kw_only=True)
class CheckpointInfo:
    """A complete checkpoint, as described by its manifest (nothing of its state is read)."""

    checkpoint_id: CheckpointId
    """Its id."""
    uri: str
    """Where its directory is, with any credentials masked."""
    created_at: float
    """When its manifest was written: Unix time in seconds (the writer's wall clock)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """The JSON metadata given to :meth:`CheckpointStore.save`."""
    objects: tuple[ObjectInfo, ...] = ()
    """Its state objects, in the order they were given."""

    @property
    def names(self) -> tuple[str, ...]:
        """The names of its state objects."""
        return tuple(o.name for o in self.objects)

    @property
    def total_bytes(self) -> int:
        """The encoded size of all its state objects."""
        return sum(o.size for o in self.objects)


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A loaded checkpoint: its manifest and its states decoded back to their kinds."""

    info: CheckpointInfo
    """What its manifest says."""
    states: Mapping[str, Any]
    """Name → ``bytes``, the JSON value (as :func:`json.loads` returns it), ``pa.Table`` or
    ``pa.RecordBatch``, as saved."""

    @property
    def checkpoint_id(self) -> CheckpointId:
        return self.info.checkpoint_id

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.info.metadata

    @property
    def created_at(self) -> float:
        return self.info.created_at
