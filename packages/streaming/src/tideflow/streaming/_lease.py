"""A lease on a job id: at most one live run per ``<checkpoint uri>/<job_id>/``.

Storage offers no atomic create-if-absent through pyarrow (S3 least of all), so the lease
is a folder, ``<job dir>/lease/``, where every run writes only its own record,
``<token>.json``; no two runs ever write the same file. A run takes the lease in four
steps: (1) read the records there, deleting the stale ones (their run was killed) and
refusing to start if a live one remains; (2) write its own record; (3) wait a short
settle; (4) read the records again and, if another live one appeared, delete its own and
refuse. On a store whose reads see every completed write (local disks; S3 since 2020),
two runs racing through these steps cannot both pass step 4: the later of the two writes
lands before the later run's second read, which sees the earlier record. Both may refuse
(they started at the same moment); the error says to run again.

A record is live while its heartbeat (rewritten every ``heartbeat_s`` by a background
thread) is younger than ``ttl_s``; a record of this host and pid namespace whose process
is gone is stale at once. Heartbeat times are wall-clock times of the writing host, so
clocks of different hosts must agree to well within ``ttl_s - heartbeat_s``.

What remains: a live run that misses its heartbeats for a whole TTL (stalled storage, a
frozen VM) looks dead and is taken over; if it wakes between checking that its record
still exists and writing its heartbeat back, both runs hold the lease. Every heartbeat
checks for this: a run whose record was deleted, or that sees another holder that started
first, stops with an error within one heartbeat interval; the checkpoint store, which
never overwrites a checkpoint, remains the last guard. A store whose listings lag behind
its writes (some S3-compatible servers) is covered only as far as the settle reaches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pyarrow import fs as pafs

from tideflow.core.clock import Clock
from tideflow.core.observability import get_logger
from tideflow.streaming.errors import JobAlreadyRunningError

__all__ = ["HEARTBEAT_S", "JobLease", "LeaseRecord", "WallClock", "pid_alive"]

HEARTBEAT_S = 5.0
"""How often a live run rewrites its heartbeat."""
SETTLE_S = 0.25
"""Step 3's wait on stores other than a local disk: a rival's record written just before
ours lands in listings that lag behind writes (some S3-compatible servers) before we look."""
_SUFFIX = ".json"


class WallClock:
    """Wall-clock time (:func:`time.time`): heartbeats are compared across processes."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "WallClock()"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host (and pid namespace) is running (not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc: os.kill's answer stands


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True, kw_only=True)
class LeaseRecord:
    """One run's claim on a job id, as written to ``lease/<token>.json``."""

    token: str
    """Unique per run."""
    host: str
    """The host name of the run's process."""
    pid: int
    """The run's process id on ``host``."""
    pid_namespace: str
    """The pid namespace of the process (``pid:[…]`` on Linux, empty if unknown): a pid is
    only checked when host and namespace are this process's."""
    started_at: float
    """When the run took the lease (wall clock, seconds since the epoch)."""
    heartbeat_at: float
    """The run's last heartbeat (wall clock)."""
    held: bool = False
    """False while the run is still checking for rivals (step 4), True once it holds."""

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.started_at, UTC).isoformat(timespec="seconds")
        return f"host {self.host!r}, process id {self.pid}, started {started}"

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseRecord:
        return cls(**json.loads(data))


class JobLease:
    """The lease of one run on the job directory whose ``lease/`` folder is ``uri``.

    ``clock`` (wall time), ``sleep``, ``pid_alive``, ``host`` and ``pid`` are injectable
    so that tests drive time and process deaths without sleeping. ``settle_s`` (step 3)
    defaults to 0 on a local file system, whose listings see every completed write (the
    argument above needs no settle there), and to :data:`SETTLE_S` elsewhere.
    """

    def __init__(
        self,
        uri: str,
        *,
        job_id: str,
        heartbeat_s: float = HEARTBEAT_S,
        ttl_s: float | None = None,
        settle_s: float | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pid_alive: Callable[[int], bool] = pid_alive,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self._fs, self._dir = pafs.FileSystem.from_uri(uri)
        self.job_id = job_id
        self.heartbeat_s = heartbeat_s
        self.ttl_s = 3 * heartbeat_s if ttl_s is None else ttl_s
        local = isinstance(self._fs, pafs.LocalFileSystem)
        self.settle_s = (0.0 if local else SETTLE_S) if settle_s is None else settle_s
        self._clock = clock if clock is not None else WallClock()
        self._sleep = sleep
        self._pid_alive = pid_alive
        self._host = host if host is not None else socket.gethostname()
        self._pid = pid if pid is not None else os.getpid()
        self._namespace = _pid_namespace()
        self.record: LeaseRecord | None = None
        """This run's record while it holds the lease."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger("tideflow.streaming.lease", job_id=job_id)

    # -- taking and giving back --------------------------------------------------------------

    def acquire(self) -> LeaseRecord:
        """Take the lease, or raise :class:`JobAlreadyRunningError` naming the live run."""
        self._fs.create_dir(self._dir, recursive=True)
        self._refuse_if_live(self._others(take_over=True), before=True)
        now = self._clock.now()
        record = LeaseRecord(
            token=uuid.uuid4().hex,
            host=self._host,
            pid=self._pid,
            pid_namespace=self._namespace,
            started_at=now,
            heartbeat_at=now,
        )
        self._write(record)
        try:
            self._sleep(self.settle_s)  # a rival's write, racing ours, lands before we look
            self._refuse_if_live(self._others(exclude=record.token), before=False)
            self.record = dataclasses.replace(record, held=True)
            self._write(self.record)
        except BaseException:  # refused, or the storage failed: leave no record behind
            self.record = None
            with contextlib.suppress(OSError):
                self._delete(record.token)
            raise
        self._log.info("lease.acquired", token=record.token, host=record.host, pid=record.pid)
        return self.record

    def release(self) -> None:
        """Stop the heartbeats and delete this run's record (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.record is None:
            return
        token, self.record = self.record.token, None
        try:
            self._delete(token)
        except OSError as error:  # the record goes stale after the TTL anyway
            self._log.warning("lease.release_failed", token=token, error=str(error)[:300])
            return
        self._log.info("lease.released", token=token)

    # -- heartbeats --------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Refresh this run's heartbeat; raise :class:`JobAlreadyRunningError` if it lost
        the lease (its record was taken over, or an earlier-started run holds it too)."""
        if self.record is None:
            raise RuntimeError("heartbeat() before acquire() or after release()")
        others = self._others(exclude=self.record.token)
        if not self._exists(self.record.token):
            self._lost("its lease record was deleted as stale", others)
        first = min([self.record, *others], key=lambda r: (not r.held, r.started_at, r.token))
        if first is not self.record:
            self._lost(f"the run of {first.describe()} holds it too", [first])
        self.record = dataclasses.replace(self.record, heartbeat_at=self._clock.now())
        self._write(self.record)

    def start_heartbeats(self, on_lost: Callable[[BaseException], None]) -> None:
        """Heartbeat every ``heartbeat_s`` on a daemon thread until :meth:`release`;
        ``on_lost(error)`` is called once if the lease is lost."""

        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    self.heartbeat()
                except JobAlreadyRunningError as error:
                    self._log.error("lease.lost", error=str(error))
                    on_lost(error)
                    return
                except OSError as error:  # storage hiccup: try again next beat
                    self._log.warning("lease.heartbeat_failed", error=str(error)[:300])

        self._thread = threading.Thread(target=beat, name=f"lease-{self.job_id}", daemon=True)
        self._thread.start()

    # -- liveness ----------------------------------------------------------------------------

    def stale_reason(self, record: LeaseRecord) -> str | None:
        """Why ``record`` is stale, or None while its run counts as live."""
        same_host = record.host == self._host and record.pid_namespace == self._namespace
        if same_host and not self._pid_alive(record.pid):
            return f"process {record.pid} is not running on this host"
        age = self._clock.now() - record.heartbeat_at
        if age > self.ttl_s:
            return f"its last heartbeat is {age:.1f} s old (TTL {self.ttl_s:g} s)"
        return None

    def _others(self, *, exclude: str = "", take_over: bool = False) -> list[LeaseRecord]:
        """The live records of other runs; with ``take_over``, stale ones are deleted."""
        live = []
        for record in self._records():
            if record.token == exclude:
                continue
            reason = self.stale_reason(record)
            if reason is None:
                live.append(record)
            elif take_over:
                self._log.warning(
                    "lease.taken_over",
                    previous_host=record.host,
                    previous_pid=record.pid,
                    previous_started_at=record.started_at,
                    reason=reason,
                )
                self._delete(record.token)
        return live

    def _refuse_if_live(self, live: list[LeaseRecord], *, before: bool) -> None:
        if not live:
            return
        other = min(live, key=lambda r: (not r.held, r.started_at))
        if before or other.held:
            message = (
                f"job {self.job_id!r} is already running ({other.describe()}); stop that "
                f"run or wait for it to finish before running the job again (its lease "
                f"lapses {self.ttl_s:g} s after its last heartbeat if it was killed)"
            )
        else:
            message = (
                f"job {self.job_id!r} was started twice at the same moment (the other: "
                f"{other.describe()}); run it again"
            )
        raise JobAlreadyRunningError(message)

    def _lost(self, why: str, others: list[LeaseRecord]) -> None:
        assert self.record is not None
        token, self.record = self.record.token, None
        self._stop.set()
        self._delete(token)
        raise JobAlreadyRunningError(
            f"job {self.job_id!r} lost its lease: {why}; this run stops "
            f"(other runs: {'; '.join(r.describe() for r in others) or 'none'})"
        )

    # -- storage -----------------------------------------------------------------------------

    def _path(self, token: str) -> str:
        return f"{self._dir}/{token}{_SUFFIX}"

    def _records(self) -> list[LeaseRecord]:
        selector = pafs.FileSelector(self._dir, allow_not_found=True)
        records = []
        for info in self._fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not info.base_name.endswith(_SUFFIX):
                continue
            try:
                with self._fs.open_input_stream(info.path) as stream:
                    records.append(LeaseRecord.from_json(stream.read()))
            except FileNotFoundError:
                continue  # released meanwhile
            except (ValueError, TypeError) as error:  # not written by a run: not a lease
                self._log.warning("lease.unreadable", path=info.path, error=str(error)[:300])
        return records

    def _write(self, record: LeaseRecord) -> None:
        # Written aside, then moved: a reader never sees half a record (a rename on local
        # disks; S3 objects appear whole anyway).
        tmp = f"{self._path(record.token)}.tmp"
        with self._fs.open_output_stream(tmp) as out:
            out.write(record.to_json())
        self._fs.move(tmp, self._path(record.token))

    def _exists(self, token: str) -> bool:
        return self._fs.get_file_info(self._path(token)).type == pafs.FileType.File

    def _delete(self, token: str) -> None:
        for path in (self._path(token), f"{self._path(token)}.tmp"):
            with contextlib.suppress(FileNotFoundError):
                self._fs.delete_file(path)
