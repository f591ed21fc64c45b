"""Logging set-up, the events Tideflow's parts emit, and metric names.

Libraries log through :func:`get_logger` and never print. Applications and CLIs decide the
output once with :func:`configure_logging`: a readable console for people, JSON lines for
machines. Events are small frozen dataclasses so that they can be logged, counted and shown
in a job's result object with the same fields.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from typing import IO, Any, ClassVar, Literal, TextIO, cast

import structlog

from tideflow.core.errors import ConfigError

__all__ = [
    "ActorEvent",
    "CheckpointEvent",
    "Event",
    "LogFormat",
    "Metrics",
    "RetryEvent",
    "ScaleEvent",
    "configure_logging",
    "get_logger",
    "log_event",
]

LogFormat = Literal["auto", "console", "json"]
"""Log output: ``auto`` (a console on a terminal, JSON lines otherwise), ``console``, ``json``."""

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _SafeStream:
    """What structlog writes to: the given stream, or whatever ``sys.stderr`` is at the
    time of each write (a stream captured at configure time may be closed later: a test's
    capture, a redirected CLI). A failed write is dropped: logging must never raise in a
    library's thread (an actor pool's dispatcher stops when it does)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream

    def _target(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    def write(self, text: str) -> int:
        try:
            return self._target().write(text)
        except (OSError, ValueError):  # closed or broken stream
            return 0

    def flush(self) -> None:
        try:
            self._target().flush()
        except (OSError, ValueError):
            return

    def isatty(self) -> bool:
        try:
            return self._target().isatty()
        except (OSError, ValueError):
            return False


def configure_logging(
    *, format: LogFormat = "auto", level: str = "info", stream: IO[str] | None = None
) -> None:
    """Configure structlog for the whole process. Call it from apps and CLIs, not libraries.

    ``format="auto"`` picks the console renderer when ``stream`` is a terminal and JSON
    lines otherwise. ``level`` is one of debug, info, warning, error.
    """
    if format not in ("auto", "console", "json"):
        message = f"configure_logging: format must be auto, console or json; got {format!r}"
        raise ConfigError(message)
    if level not in _LEVELS:
        message = f"configure_logging: level must be one of {sorted(_LEVELS)}; got {level!r}"
        raise ConfigError(message)
    out = _SafeStream(stream)
    use_console = format == "console" or (format == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, out)),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **initial: Any) -> Any:
    """Return a structlog logger bound to ``component=name`` and any initial fields."""
    return structlog.get_logger(name).bind(component=name, **initial)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events: ``time`` is the emitting component's clock reading in seconds."""

    name: ClassVar[str] = "event"
    time: float
    """When it happened, on the clock of the component that emitted it."""

    def as_dict(self) -> dict[str, Any]:
        """The event's fields, plus its name under ``event_type``."""
        return {"event_type": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class ScaleEvent(Event):
    """A pool changed (or was asked to change) its number of actors."""

    name: ClassVar[str] = "pool.scaled"
    pool: str
    """The pool's name."""
    from_size: int
    """Actors before the decision."""
    to_size: int
    """Actors the pool was asked to have."""
    reason: str
    """Why, in words, with the figures that led to it."""
    duration_s: float | None = None
    """How long the resize took until every new actor was ready (None until known)."""

    @property
    def direction(self) -> Literal["up", "down"]:
        return "up" if self.to_size > self.from_size else "down"

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "direction": self.direction}


@dataclass(frozen=True, kw_only=True)
class CheckpointEvent(Event):
    """A checkpoint epoch started, completed or was aborted."""

    name: ClassVar[str] = "checkpoint"
    checkpoint_id: int
    """The epoch."""
    status: Literal["started", "completed", "aborted"]
    """What happened to it."""
    duration_s: float | None = None
    """From the start of the epoch to its completion or abort (the epoch's latency)."""
    save_s: float | None = None
    """Of that, writing its state to the store: snapshot to durable manifest."""
    reason: str | None = None
    """Why it was aborted."""


@dataclass(frozen=True, kw_only=True)
class ActorEvent(Event):
    """An actor of a pool started, died, was replaced or was removed."""

    name: ClassVar[str] = "pool.actor"
    pool: str
    """The pool's name."""
    actor: str
    """The actor's name within the pool."""
    status: Literal["started", "died", "replaced", "removed"]
    """What happened to it."""
    reason: str | None = None
    """Why (for example the error that killed it)."""


@dataclass(frozen=True, kw_only=True)
class RetryEvent(Event):
    """A piece of work is retried after its actor died."""

    name: ClassVar[str] = "pool.retry"
    pool: str
    """The pool's name."""
    attempt: int
    """The attempt about to start (2 is the first retry)."""
    error: str
    """The error that ended the previous attempt."""
    backoff_s: float
    """How long the retry waits before it is dispatched again."""


def log_event(logger: Any, event: Event, *, level: str = "info") -> None:
    """Log ``event`` under its name with all its fields."""
    fields = event.as_dict()
    fields.pop("event_type")
    getattr(logger, level)(event.name, **fields)


class Metrics:
    """Metric names, shared by the Prometheus exposition and the job result objects."""

    POOL_ACTORS = "tideflow_pool_actors"
    POOL_ACTIVE_ACTORS = "tideflow_pool_active_actors"
    POOL_UTILIZATION = "tideflow_pool_utilization"
    POOL_QUEUED = "tideflow_pool_queued_work"
    POOL_IN_FLIGHT = "tideflow_pool_in_flight_work"
    POOL_RETRIES = "tideflow_pool_retries_total"
    POOL_ACTOR_DEATHS = "tideflow_pool_actor_deaths_total"
    SCALE_EVENTS = "tideflow_scale_events_total"
    SCALE_DURATION = "tideflow_scale_duration_seconds"
    CHECKPOINTS_COMPLETED = "tideflow_checkpoints_completed_total"
    CHECKPOINTS_ABORTED = "tideflow_checkpoints_aborted_total"
    CHECKPOINT_DURATION = "tideflow_checkpoint_duration_seconds"
    CHECKPOINT_BYTES = "tideflow_checkpoint_bytes"
    STAGE_ROWS_IN = "tideflow_stage_rows_in_total"
    STAGE_ROWS_OUT = "tideflow_stage_rows_out_total"
    STAGE_BACKPRESSURE_SECONDS = "tideflow_stage_backpressure_seconds_total"
