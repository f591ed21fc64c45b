"""What runs after an epoch is durable, besides the sink's commit: completion callbacks
in batches, and the source's positions (on a thread of their own)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.streaming.errors import JobAbortedError

__all__ = ["Committer", "Completions", "PositionCommitter"]


class Completions:
    """``on_complete(ids)`` in lists of at most ``every`` ids (nothing without a callback)."""

    def __init__(
        self,
        on_complete: Callable[[list[Any]], None] | None,
        every: int,
        *,
        name: str = "on_complete",
    ) -> None:
        self.on_complete = on_complete
        self.every = every
        self.name = name  # the callback's option name, for the error when it raises
        self._ids: list[Any] = []

    @property
    def buffered(self) -> int:
        """Ids written (ACK mode) and not reported yet."""
        return len(self._ids)

    def add(self, ids: list[Any]) -> None:
        """Keep ``ids`` for the next :meth:`flush`."""
        self._ids.extend(ids)

    def flush_if_full(self) -> None:
        """Report the kept ids once at least ``every`` are kept."""
        if len(self._ids) >= self.every:
            self.flush()

    def flush(self) -> None:
        """Report every kept id."""
        ids, self._ids = self._ids, []
        self.notify(ids)

    def notify(self, ids: list[Any]) -> None:
        """Report ``ids`` now, in lists of at most ``every``."""
        if self.on_complete is not None:
            for start in range(0, len(ids), self.every):
                try:
                    self.on_complete(ids[start : start + self.every])
                except Exception as error:
                    # Named: the job stops "committing" an epoch whose sink commit worked.
                    message = (
                        f"the {self.name} callback raised {type(error).__name__}: {error} "
                        "(its rows are committed; a rerun calls it again with them)"
                    )
                    raise JobAbortedError(message) from error


class PositionCommitter:
    """Tells the source what is durable (Kafka: the consumer group's offsets), on a thread
    of its own: a stalled broker must not stall the job. Only the newest positions matter,
    so a call still running makes the next ones wait and merge."""

    def __init__(self, commit: Callable[[dict[str, Any]], None], log: Any = None) -> None:
        self._commit = commit
        self._log = log or get_logger("tideflow.streaming.executor")
        self._lock = threading.Lock()
        self._next: dict[str, Any] | None = None
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, positions: dict[str, Any]) -> None:
        """Commit ``positions`` soon (replacing any not started yet)."""
        with self._lock:
            self._next = positions
            self._idle.clear()
            if self._busy:
                return
            self._busy = True
        threading.Thread(target=self._run, name="commit-positions", daemon=True).start()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted position was committed (or failed)."""
        return self._idle.wait(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                positions, self._next = self._next, None
                if positions is None:
                    self._busy = False
                    self._idle.set()
                    return
            try:
                self._commit(positions)
            except Exception as error:  # best effort: the checkpoint is what a rerun uses
                self._log.warning("source.commit_positions_failed", error=str(error)[:300])


class Committer:
    """One thread that runs checkpoint work — the acknowledgements that complete an epoch,
    and so its save, the sinks' commit, the completion callbacks and the positions' hand-off
    — strictly in the order it was submitted, so that the loop goes on reading and
    dispatching while a commit is slow.

    The first piece of work that raises is handed to ``on_error`` (the executor stops the
    job with it) and the work after it is dropped: nothing may commit past a failure.
    """

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._on_error = on_error
        self._work: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._idle = threading.Event()
        self._idle.set()
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], object]) -> None:
        """Run ``work()`` after everything submitted before it."""
        with self._lock:
            self._queued += 1
            self._idle.clear()
        self._work.put(work)

    @property
    def queued(self) -> int:
        """Pieces of work submitted and not finished."""
        with self._lock:
            return self._queued

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted has run (or was dropped after a failure)."""
        return self._idle.wait(timeout=timeout)

    def shutdown(self, *, wait: bool, timeout: float | None = None) -> None:
        """Stop the thread: after the work queued so far (``wait``), or after the piece
        running now, dropping the rest. Waits up to ``timeout`` s for the thread."""
        if not wait:
            self._failed = True  # drop what is queued: the job is stopping on an error
        self._work.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (work := self._work.get()) is not None:
            if not self._failed:
                try:
                    work()
                except BaseException as error:
                    self._failed = True
                    self._on_error(error)
            with self._lock:
                self._queued -= 1
                if self._queued == 0:
                    self._idle.set()
