"""The connector kit: what every connector would otherwise write again.

- :func:`guarded`: run a storage or client call; its errors become the connector's error
  (:class:`SourceError`, :class:`SinkError`), naming the connector and what it did, never
  carrying credentials (raised outside ``except``, so the raw error is not its context).
- :func:`check_uri`, :func:`check_count`, :func:`check_columns`: the constructor checks.
- :class:`Position` and :func:`parse_position`: the resume state of a reader that goes
  through an ordered list of parts (files, data files, fragments) and skips rows in one;
  :func:`skip_rows` does the skipping.
- :class:`StagedName`: the name of what a writer staged for an epoch (``epoch-000042-r002-
  w003``), the same for every sink that stages files; :func:`only` and :func:`after` say
  which staged epochs an abort and a recovery remove, and :class:`RemovesStaged` is that
  abort and recovery for a sink that can remove its staged epochs.
- :func:`json_default`: values JSON has no type for, as JSON sinks write them.
- :func:`dead_letter`: a source's dead-letter row.
"""

from __future__ import annotations

import base64
import datetime
import os
import re
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from tideflow.core.errors import MissingDependencyError
from tideflow.core.uri import redact
from tideflow.streaming.connectors._base import JSON, JobContext, Sink
from tideflow.streaming.errors import ConfigError, SourceError

__all__ = [
    "FILE_ERRORS",
    "Position",
    "RemovesStaged",
    "StagedName",
    "after",
    "check_columns",
    "check_count",
    "check_uri",
    "dead_letter",
    "describe_error",
    "guarded",
    "json_default",
    "only",
    "parse_position",
    "skip_rows",
]

FILE_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, pa.ArrowException)
"""What filesystem and Arrow calls raise when storage or data is at fault."""


# -- errors ----------------------------------------------------------------------------------


def describe_error(error: BaseException) -> str:
    """``"<type>: <message>"`` with URI credentials masked."""
    return f"{type(error).__name__}: {redact(str(error))}"


def guarded(
    owner: str,
    what: str,
    error: type[Exception],
    fn: Callable[..., Any],
    *args: Any,
    catch: tuple[type[BaseException], ...] = FILE_ERRORS,
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)``; an exception of a ``catch`` type becomes
    ``error("<owner>: cannot <what>: <type>: <message>")`` without secrets. A missing optional
    library (:class:`MissingDependencyError`) goes through as it is: it names the extra."""
    problem = None
    try:
        return fn(*args, **kwargs)
    except MissingDependencyError:
        raise
    except catch as e:
        problem = describe_error(e)
    raise error(f"{owner}: cannot {redact(what)}: {problem}")


# -- constructor checks -----------------------------------------------------------------------


def check_uri(owner: str, uri: object) -> str:
    """``uri`` (a string or path) as text; :class:`ConfigError` unless a non-empty one."""
    text = os.fspath(uri) if isinstance(uri, os.PathLike) else uri
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{owner}.uri must be a non-empty string or path; got {uri!r}")
    return text


def check_count(owner: str, name: str, value: object, *, optional: bool = False) -> None:
    """:class:`ConfigError` unless ``value`` is an int ≥ 1 (or None, when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "None or an int ≥ 1" if optional else "an int ≥ 1"
        raise ConfigError(f"{owner}.{name} must be {allowed}; got {value!r}")


def check_columns(owner: str, columns: object) -> None:
    """:class:`ConfigError` unless ``columns`` is None or a list (tuple) of names."""
    if columns is not None and (
        not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns)
    ):
        raise ConfigError(f"{owner}.columns must be None or a list of str; got {columns!r}")


# -- resuming inside an ordered list of parts -------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where a reader of ordered parts stands: part ``part``, ``row`` rows of it returned."""

    part: int = 0
    row: int = 0


def parse_position(
    owner: str,
    split_id: str,
    parts: Sequence[str],
    state: JSON,
    *,
    keys: tuple[str, str, str] = ("part", "row", "name"),
    changed: str = "the table changed under a pinned snapshot (was it rewritten or expired?)",
) -> Position:
    """The checked :class:`Position` of a resume state ``{"part": i, "row": r, "name": …}``
    (``keys`` renames the three); ``name``, when present, must be the part now at ``i``, or
    the :class:`SourceError` says that ``changed``."""
    if state is None:
        return Position()
    index_key, row_key, name_key = keys
    part = state.get(index_key) if isinstance(state, dict) else None
    row = state.get(row_key) if isinstance(state, dict) else None
    if (
        not isinstance(part, int)
        or not isinstance(row, int)
        or not 0 <= part <= len(parts)
        or row < 0
    ):
        message = (
            f"{owner}: split {split_id!r} cannot resume from {state!r}; expected "
            f'{{"{index_key}": 0..{len(parts)}, "{row_key}": ≥ 0}}'
        )
        raise SourceError(message)
    expected = parts[part] if part < len(parts) else None
    if state.get(name_key, expected) != expected:
        message = (
            f"{owner}: split {split_id!r} was at {state.get(name_key)!r} ({index_key} {part}) "
            f"when checkpointed, but that position now holds {expected!r}: {changed}"
        )
        raise SourceError(message)
    return Position(part, row)


def skip_rows(batches: Iterator[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    """``batches`` without their first ``skip`` rows."""
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0


# -- epoch staging ----------------------------------------------------------------------------

_STAGED = re.compile(r"^epoch-(\d+)-r(\d+)-w(\d+)(?:-(\d+))?(\.[A-Za-z0-9.]+)$")


@dataclass(frozen=True)
class StagedName:
    """What a writer staged for an epoch: ``epoch-<epoch>-r<run>-w<writer>[-<seq>]<ext>``."""

    epoch: int
    run: int
    writer: int
    seq: int | None = None
    """The writer's file number within the epoch; None for a sink with one file a writer."""
    ext: str = ""

    @property
    def name(self) -> str:
        seq = "" if self.seq is None else f"-{self.seq:05d}"
        return f"epoch-{self.epoch:06d}-r{self.run:03d}-w{self.writer:03d}{seq}{self.ext}"

    @classmethod
    def parse(cls, name: str) -> StagedName | None:
        """The parts of a staged base name (no directory), or None when it is not one."""
        m = _STAGED.match(name)
        if m is None:
            return None
        seq = None if m[4] is None else int(m[4])
        return cls(int(m[1]), int(m[2]), int(m[3]), seq, m[5])


def only(epoch: int) -> Callable[[int], bool]:
    """The staged epochs an abort of ``epoch`` removes: that one."""
    return lambda e: e == epoch


def after(last_epoch: int | None) -> Callable[[int], bool]:
    """The staged epochs a recovery to ``last_epoch`` removes: all after it (None: all)."""
    return lambda e: last_epoch is None or e > last_epoch


class RemovesStaged(Sink):
    """``abort`` and ``recover`` for a sink that removes staged epochs it is asked to: the
    aborted epoch, or those after the restored checkpoint's; each logged as
    ``<events>.aborted`` / ``<events>.recovered`` with the number of files removed."""

    events: ClassVar[str] = "sink"

    @abstractmethod
    def remove_staged(self, ctx: JobContext, which: Callable[[int], bool]) -> int:
        """Delete what is staged for the epochs ``which`` selects; how many were removed."""

    @abstractmethod
    def _log(self) -> Any: ...

    def abort(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        removed = self.remove_staged(ctx, only(epoch))
        self._log().info(f"{self.events}.aborted", job_id=ctx.job_id, epoch=epoch, removed=removed)

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:
        removed = self.remove_staged(ctx, after(last_epoch))
        self._log().info(
            f"{self.events}.recovered", job_id=ctx.job_id, last_epoch=last_epoch, removed=removed
        )


# -- JSON and dead letters -------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: bytes as base64, dates and times in ISO
    8601, durations as seconds, decimals and anything else as text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return str(value)


def dead_letter(error: str, record: JSON, *, offset: int | None = None) -> dict[str, JSON]:
    """A source's dead-letter row (see :meth:`SplitReader.dead_letters`): the ``error``, the
    ``record`` that names the input and, in ACK mode, its ``offset``."""
    row: dict[str, JSON] = {"error": error, "record": record}
    if offset is not None:
        row["offset"] = offset
    return row
