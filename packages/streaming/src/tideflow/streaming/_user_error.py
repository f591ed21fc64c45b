"""The job's error as :meth:`Job.wait` raises it: our own exception, its own message first.

Ray hands back an exception raised inside an actor wrapped in a ``RayTaskError``, whose text
starts with Ray's header and the actor-side traceback; the message the user needs comes
last. :func:`user_error` unwraps it where the error leaves the engine.
"""

from __future__ import annotations

import re

from tideflow.streaming.errors import ActorError, JobAbortedError

__all__ = ["user_error"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its header for terminals


def user_error(error: BaseException) -> BaseException:
    """What the user sees for the job's ``error``.

    * When ``error`` or one of its causes is Ray's wrapper of an exception raised inside an
      actor, the original is raised if it is one of Tideflow's own (a ``SinkError``, the
      test kit's ``TestAbort``), otherwise an :class:`ActorError` with the original's
      message, the original as ``__cause__``. A note carries Ray's report (which actor
      method, the actor-side traceback) and, when the wrapper was a cause, the outer error.
    * A :class:`JobAbortedError` whose message does not include its cause's gets it as a
      second line (``caused by: …``): a checkpoint that could not be saved names where.
    * Anything else is returned as it is.
    """
    try:
        return _for_user(error)
    except Exception:  # presenting the error must never lose it
        return error


def _for_user(error: BaseException) -> BaseException:
    from ray.exceptions import RayActorError, RayTaskError

    wrapped = next((e for e in _chain(error) if isinstance(e, RayTaskError | RayActorError)), None)
    if wrapped is not None:
        return _unwrapped(wrapped, outer=error)
    cause = error.__cause__
    if type(error) is JobAbortedError and cause is not None and str(cause) not in str(error):
        detailed = JobAbortedError(f"{error}\ncaused by: {cause}")
        detailed.__cause__ = cause
        return detailed.with_traceback(error.__traceback__)
    return error


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and its causes, outermost first (each once)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__
    return chain


def _unwrapped(wrapped: BaseException, *, outer: BaseException) -> BaseException:
    from ray.exceptions import RayActorError, RayTaskError

    report = _ANSI.sub("", str(wrapped))
    original: BaseException | None = None
    if isinstance(wrapped, RayTaskError):
        original = wrapped.cause
        while isinstance(original, RayTaskError):  # an actor re-raised another one's error
            original = original.cause
    if original is not None and _is_ours(original):
        result = original
    else:
        if original is not None:
            message = str(original) or type(original).__name__
        else:
            assert isinstance(wrapped, RayActorError)
            message = _died(wrapped)
        result = _actor_error(original, message)
        result.__cause__ = original if original is not None else wrapped
    if outer is not wrapped:
        result.add_note(str(outer))
    result.add_note(f"raised inside an actor of the job; Ray's report:\n{report}")
    return result


_DUALS: dict[type[BaseException], type[ActorError]] = {}


def _actor_error(original: BaseException | None, message: str) -> ActorError:
    """An :class:`ActorError` that is also an instance of the original's class (as Ray's
    own wrapper was), so ``except ValueError`` around ``run()`` still catches a
    ``ValueError`` raised in a user's function; a plain one when the classes cannot be
    combined (their C layouts differ, e.g. ``OSError``)."""
    cls = type(original) if original is not None else None
    if cls is None or issubclass(cls, ActorError) or not issubclass(cls, Exception):
        return ActorError(message)
    try:
        dual = _DUALS.get(cls)
        if dual is None:
            dual = type(
                f"ActorError({cls.__name__})",
                (ActorError, cls),
                {
                    "__module__": ActorError.__module__,
                    "__reduce__": _reduce_to_plain,
                    # The message as it is: KeyError's own __str__ would quote it again.
                    "__str__": BaseException.__str__,
                },
            )
            _DUALS[cls] = dual
        error = dual.__new__(dual)
        BaseException.__init__(error, message)  # not cls.__init__: its arguments are unknown
        return error
    except TypeError:
        return ActorError(message)


def _reduce_to_plain(self: ActorError) -> tuple[type[ActorError], tuple[str]]:
    return (ActorError, (str(self),))  # the combined class exists only in this process


def _is_ours(error: BaseException) -> bool:
    """Whether ``error`` is of a type that Tideflow defines (raised on purpose, documented)."""
    return type(error).__module__.partition(".")[0] == "tideflow"


def _died(error: BaseException) -> str:
    """The message of an actor that died: its error's last line when its start failed."""
    text = str(error).strip()
    if getattr(error, "actor_init_failed", False):
        last = text.splitlines()[-1].strip() if text else ""
        return f"an actor of the job failed to start: {last}"
    return text.splitlines()[0] if text else "an actor of the job died"
