"""What a run of a job is given besides its plan: the options of :meth:`Pipeline.start`,
validated once there and passed on whole (no keyword list repeated from layer to layer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tideflow.core.errors import ConfigError
from tideflow.streaming._execution.backpressure import BackpressurePolicy
from tideflow.streaming._metrics import JobResult
from tideflow.streaming._plan import CheckpointConfig
from tideflow.streaming.connectors._base import Sink

__all__ = ["MAX_RESTARTS_LIMIT", "RunOptions"]

MAX_RESTARTS_LIMIT = 99
"""The most restarts after losses a run may be allowed (a loop of restarts that keeps losing
the same part is a failure to report, not to retry for ever)."""


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """The options of one run (see :meth:`Pipeline.start` for each)."""

    checkpoint: CheckpointConfig | None = None
    dead_letter: Sink | None = None
    queue_limit: int | None = None
    on_progress: Callable[[JobResult], None] | None = None
    on_complete: Callable[[list[Any]], None] | None = None
    id_column: str | None = None
    complete_every: int = 10_000
    on_dead_letter: Callable[[list[dict[str, Any]]], None] | None = None
    max_restarts: int = 3
    """Restarts from the last complete checkpoint, inside the run, after a part of the job
    was lost (an actor, or a batch held on a node that died)."""
    io_resources: Mapping[str, float] | None = None
    """Ray custom resources the I/O actor and the sink's writers ask for (pins them to the
    nodes, or pool, that have them); None: anywhere."""
    io_label_selector: Mapping[str, str] | None = None
    """Ray node labels the I/O actor's and the writers' nodes must have (e.g.
    ``{"tideflow.io/pool": "io"}``); None: any node."""
    rediscover_s: float = 5.0
    """Seconds between looks for new splits of an unbounded source."""
    backpressure: BackpressurePolicy | None = None
    """None: :class:`~._execution.backpressure.QueueLimits` with ``queue_limit``."""

    def __post_init__(self) -> None:
        if self.on_complete is not None and self.id_column is None:
            raise ConfigError("on_complete needs id_column=: the column that identifies a row")
        if self.on_dead_letter is not None and not callable(self.on_dead_letter):
            raise ConfigError(f"on_dead_letter must be a function; got {self.on_dead_letter!r}")
        if self.dead_letter is not None and not isinstance(self.dead_letter, Sink):
            message = (
                "dead_letter expects a tideflow.streaming.connectors Sink; "
                f"got {self.dead_letter!r}"
            )
            raise ConfigError(message)
        for name in ("on_complete", "on_progress"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise ConfigError(f"{name} must be a function; got {hook!r}")
        every = self.complete_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"complete_every must be an int >= 1; got {every!r}")
        limit = self.queue_limit
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            # 0 would let no batch through: a job that never reads and never ends.
            raise ConfigError(f"queue_limit must be None or an int >= 1; got {limit!r}")
        io = self.io_resources
        if io is not None and (
            not isinstance(io, Mapping)
            or not all(isinstance(k, str) and isinstance(v, int | float) for k, v in io.items())
            or any(isinstance(v, bool) or v < 0 for v in io.values())
        ):
            raise ConfigError(
                f"io_resources must map Ray resource names to amounts >= 0; got {io!r}"
            )
        labels = self.io_label_selector
        if labels is not None and (
            not isinstance(labels, Mapping)
            or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in labels.items()
            )
        ):
            raise ConfigError(
                f"io_label_selector must map node label names to non-empty strings; got {labels!r}"
            )
        restarts = self.max_restarts
        if isinstance(restarts, bool) or not isinstance(restarts, int):
            raise ConfigError(f"max_restarts must be an int in [0, 99]; got {restarts!r}")
        if not 0 <= restarts <= MAX_RESTARTS_LIMIT:
            raise ConfigError(f"max_restarts must be in [0, {MAX_RESTARTS_LIMIT}]; got {restarts}")
