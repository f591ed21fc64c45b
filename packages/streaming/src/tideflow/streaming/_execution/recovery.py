"""Which failures a run survives by restarting from its last complete checkpoint.

A job's parts live in actors and its batches in Ray's object store, on some node. When a
node dies (or an actor is killed) the I/O actor, a sink writer, a keyed stage's partition
actor or batches in flight are gone, and so is every epoch not yet committed; nothing that
was committed is. The run then does what a rerun with the same job id would do, without
the user: it drops the lost attempt's actors and staged output, restores the last complete
checkpoint (source positions, keyed state), re-creates the actors — wherever Ray has room,
which after a node loss is another node — and replays from there. Exactly once holds as it
does across reruns: staged output of uncommitted epochs is dropped and commits are
idempotent by epoch.

Failures of the job's own code are not losses: a function that raises sends its rows to
the dead letters, a sink that cannot write stops the job, and so does a stage class whose
constructor raises (at once, with its error: a restart would build it again and fail the
same way; an actor whose *process* died while starting is a loss). Stateless stages'
actors are replaced by their pool and their batches retried there (see
:mod:`._operators.pool_map`); what reaches this module is what the pool cannot recover: the
actors that hold state or I/O, and batches whose rows are gone with their node.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Lost", "lost_part"]


@dataclass(frozen=True)
class Lost:
    """What a failure lost: ``kind`` is ``"actor"`` or ``"object"``; ``detail`` is Ray's
    first line about it."""

    kind: str
    detail: str


def _lost_types() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    import ray.exceptions as rex

    actors: tuple[type[BaseException], ...] = (rex.RayActorError,)
    objects: list[type[BaseException]] = [rex.ObjectLostError]
    for name in ("NodeDiedError", "WorkerCrashedError", "ObjectFetchTimedOutError"):
        kind = getattr(rex, name, None)
        if isinstance(kind, type):
            objects.append(kind)
    return actors, tuple(objects)


def lost_part(error: BaseException | None) -> Lost | None:
    """What ``error`` (or an error it was raised from) says was lost; None when it is not a
    loss (a failure of the job's own code, a configuration error, a stop)."""
    try:
        actors, objects = _lost_types()
    except ImportError:  # no Ray: nothing ran on it
        return None
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, actors):
            if getattr(error, "actor_init_failed", False):
                return None  # its constructor raised: it would raise again in a restart
            return Lost("actor", _first_line(error))
        if isinstance(error, objects):
            return Lost("object", _first_line(error))
        cause = getattr(error, "cause", None)  # RayTaskError: the error inside the task
        error = cause if isinstance(cause, BaseException) else error.__cause__
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
