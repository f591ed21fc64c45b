"""Where a job keeps its checkpoints, its run counter and its default dead-letter output."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

from pyarrow import fs as pafs

from tideflow.core.errors import CheckpointLocationError, ConfigError
from tideflow.core.uri import redact
from tideflow.streaming._lease import JobLease
from tideflow.streaming._plan import CheckpointConfig
from tideflow.streaming.connectors._base import Sink

__all__ = ["JobDirectory", "join_uri"]


def join_uri(uri: str, *parts: str) -> str:
    """Append path parts to a URI, keeping a query string (``?endpoint_override=…``) last."""
    base, sep, query = uri.partition("?")
    path = "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return f"{path}{sep}{query}"


class JobDirectory:
    """``<checkpoint uri>/<job_id>/``: ``checkpoints/``, ``runs/``, ``dead_letters/``, ``lease/``.

    A run holds the job's lease (:class:`~tideflow.streaming._lease.JobLease`) from
    :meth:`start_run` to :meth:`end_run`, so a second run of the job id is refused while
    one is live. Without a checkpoint configuration the job lives in a fresh temporary
    directory, needs no lease, runs exactly once per call and a rerun starts over;
    :attr:`output_id` then carries a unique suffix, so that two such runs never publish
    files under the same names.

    A location that cannot be reached, listed or written fails :meth:`start_run` with
    :class:`~tideflow.core.errors.CheckpointLocationError`, which names it (credentials
    masked); a URI that pyarrow cannot open fails here with :class:`ConfigError`.
    """

    def __init__(self, job_id: str, checkpoint: CheckpointConfig | None) -> None:
        base = (
            checkpoint.uri if checkpoint is not None else tempfile.mkdtemp(prefix="tideflow-job-")
        )
        if "://" not in base:
            base = os.path.abspath(base)  # pyarrow needs absolute local paths
        self.uri = join_uri(base, job_id)
        self.checkpoints_uri = join_uri(self.uri, "checkpoints")
        self.output_id = job_id if checkpoint is not None else f"{job_id}-{uuid.uuid4().hex[:8]}"
        """The job id connectors see: unique per run when there are no checkpoints."""
        self.lease: JobLease | None = None
        """The job id's lease (None without checkpoints: the directory is this run's own)."""
        problem = None
        try:
            if checkpoint is not None:
                self.lease = JobLease(join_uri(self.uri, "lease"), job_id=job_id)
        except (ValueError, OSError, TypeError) as error:
            problem = redact(str(error))
        if problem is not None:  # raised outside `except`: pyarrow's error may repeat the URI
            raise ConfigError(f"cannot open the checkpoint location {redact(base)!r}: {problem}")

    def start_run(self, on_lease_lost: Callable[[BaseException], None] | None = None) -> int:
        """Take the job's lease, record a new run and return its number (1 for the first).

        Raises :class:`~tideflow.streaming.errors.JobAlreadyRunningError` while another run
        of the job id is live, before anything of the job is read. ``on_lease_lost(error)``
        is called (from the heartbeat thread) if this run later loses the lease.
        """
        if self.lease is not None:
            with self._location("take the job's lease at"):
                self.lease.acquire()
            self.lease.start_heartbeats(on_lease_lost or (lambda error: None))
        try:
            with self._location("record a new run at"):
                return self._record_run()
        except BaseException:
            self.end_run()
            raise

    def end_run(self) -> None:
        """Give the job's lease back (idempotent): the next run may start."""
        if self.lease is not None:
            self.lease.release()

    @contextlib.contextmanager
    def _location(self, action: str) -> Iterator[None]:
        """Raise an I/O error of the job directory as a :class:`CheckpointLocationError`."""
        try:
            yield
        except OSError as error:
            raise CheckpointLocationError(action, self.uri, str(error)) from error

    def _record_run(self) -> int:
        filesystem, path = pafs.FileSystem.from_uri(self.uri)
        runs = f"{path}/runs"
        filesystem.create_dir(runs, recursive=True)
        count = len(filesystem.get_file_info(pafs.FileSelector(runs, allow_not_found=True)))
        with filesystem.open_output_stream(f"{runs}/run-{count + 1:06d}") as out:
            out.write(str(time.time()).encode())
        return count + 1

    def default_dead_letter(self) -> Sink:
        from tideflow.streaming.connectors.files import JSONLSink

        return JSONLSink(join_uri(self.uri, "dead_letters"))
