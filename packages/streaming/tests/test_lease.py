"""The lease on a job id: one live run per checkpoint location and job id.

The lease logic runs without Ray and without sleeping (a fake clock, an injected check of
process liveness); the engine tests start real runs of one job id side by side.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _udfs import add_one, rows
from structlog.testing import capture_logs

from tideflow.core.testing import FakeClock
from tideflow.streaming import CheckpointConfig, JobAlreadyRunningError, Pipeline
from tideflow.streaming._lease import JobLease
from tideflow.streaming.testing import CollectingSink, TestSource

T0 = 1_800_000_000.0  # wall-clock seconds: 2027-01-15T08:00:00Z
HEARTBEAT_S = 5.0
TTL_S = 15.0


def _lease(
    folder: Path,
    clock: FakeClock,
    *,
    host: str = "node-a",
    pid: int = 101,
    alive: set[int] | None = None,
) -> JobLease:
    """A lease of job "j" whose process liveness is ``pid in alive`` (default: all alive)."""
    return JobLease(
        str(folder),
        job_id="j",
        heartbeat_s=HEARTBEAT_S,
        ttl_s=TTL_S,
        clock=clock,
        sleep=clock.advance,
        pid_alive=(lambda p: True) if alive is None else alive.__contains__,
        host=host,
        pid=pid,
    )


# -- the lease logic ----------------------------------------------------------------------------


def test_a_second_run_is_refused_while_the_first_is_live_and_the_error_names_it(tmp_path):
    clock = FakeClock(T0)
    _lease(tmp_path, clock, host="node-a", pid=101).acquire()
    started = datetime.fromtimestamp(clock.now(), UTC).isoformat(timespec="seconds")
    clock.advance(HEARTBEAT_S)

    with pytest.raises(JobAlreadyRunningError) as refused:
        _lease(tmp_path, clock, host="node-b", pid=202).acquire()

    message = str(refused.value)
    assert "'node-a'" in message
    assert "process id 101" in message
    assert f"started {started}" in message
    assert "stop that run or wait" in message


def test_a_lease_whose_heartbeat_is_older_than_the_ttl_is_taken_over(tmp_path):
    clock = FakeClock(T0)
    _lease(tmp_path, clock, host="node-a", pid=101).acquire()  # then no more heartbeats
    clock.advance(TTL_S + 1)

    with capture_logs() as logs:
        second = _lease(tmp_path, clock, host="node-b", pid=202).acquire()

    assert second.held and second.host == "node-b"
    [taken] = [e for e in logs if e["event"] == "lease.taken_over"]
    assert taken["previous_host"] == "node-a" and taken["previous_pid"] == 101
    assert "heartbeat" in taken["reason"]


def test_a_lease_still_within_its_ttl_on_another_host_is_live(tmp_path):
    clock = FakeClock(T0)
    _lease(tmp_path, clock, host="node-a", pid=101).acquire()
    clock.advance(TTL_S - 1)

    # Pid 101 is not running here, but it is another host's pid: only the TTL counts.
    with pytest.raises(JobAlreadyRunningError):
        _lease(tmp_path, clock, host="node-b", pid=202, alive=set()).acquire()


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    clock = FakeClock(T0)
    _lease(tmp_path, clock, pid=101).acquire()
    clock.advance(1.0)  # the heartbeat is fresh: only the dead process makes it stale

    with capture_logs() as logs:
        second = _lease(tmp_path, clock, pid=202, alive={202}).acquire()

    assert second.pid == 202
    [taken] = [e for e in logs if e["event"] == "lease.taken_over"]
    assert taken["previous_pid"] == 101
    assert "process 101 is not running" in taken["reason"]


def test_a_released_lease_lets_the_next_run_start_at_once(tmp_path):
    clock = FakeClock(T0)
    first = _lease(tmp_path, clock, pid=101)
    first.acquire()
    first.release()

    with capture_logs() as logs:
        second = _lease(tmp_path, clock, pid=202).acquire()

    assert second.pid == 202
    assert not [e for e in logs if e["event"] == "lease.taken_over"]  # nothing was left


def test_heartbeats_keep_a_run_live_past_the_ttl(tmp_path):
    clock = FakeClock(T0)
    first = _lease(tmp_path, clock, host="node-a", pid=101)
    first.acquire()
    for _ in range(10):  # 50 s of heartbeats: more than three TTLs
        clock.advance(HEARTBEAT_S)
        first.heartbeat()
    assert first.record is not None and first.record.heartbeat_at == clock.now()

    clock.advance(TTL_S - 1)
    with pytest.raises(JobAlreadyRunningError, match="'node-a'"):
        _lease(tmp_path, clock, host="node-b", pid=202).acquire()


def test_a_run_whose_lease_was_taken_over_learns_it_at_its_next_heartbeat(tmp_path):
    clock = FakeClock(T0)
    stalled = _lease(tmp_path, clock, host="node-a", pid=101)
    stalled.acquire()
    clock.advance(TTL_S + 1)  # its heartbeats stalled for a whole TTL
    _lease(tmp_path, clock, host="node-b", pid=202).acquire()

    with pytest.raises(JobAlreadyRunningError, match="lost its lease"):
        stalled.heartbeat()
    stalled.release()  # nothing left to give back; the new run keeps the lease
    with pytest.raises(JobAlreadyRunningError, match="'node-b'"):
        _lease(tmp_path, clock, host="node-c", pid=303).acquire()


class _RaceClock(FakeClock):
    """A fake clock that runs ``hook`` once, at its next reading: a rival acting then."""

    hook: Callable[[], object] | None = None

    def now(self) -> float:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return super().now()


def test_of_two_runs_holding_the_lease_the_later_one_stops_at_its_heartbeat(tmp_path):
    clock = _RaceClock(T0)
    early = _lease(tmp_path, clock, host="node-a", pid=101)
    early.acquire()
    clock.advance(TTL_S + 1)  # its heartbeats stalled for a whole TTL
    late = _lease(tmp_path, clock, host="node-b", pid=202)
    # The race plain storage leaves: the early run checks its record, the late run takes
    # the stale lease over, then the early run writes its heartbeat back. Both hold it.
    clock.hook = late.acquire
    early.heartbeat()
    assert late.record is not None and late.record.held

    with pytest.raises(JobAlreadyRunningError, match=r"'node-a'.*holds it too"):
        late.heartbeat()
    early.heartbeat()  # the run that started first keeps the lease
    with pytest.raises(JobAlreadyRunningError, match="'node-a'"):
        _lease(tmp_path, clock, host="node-c", pid=303).acquire()


def test_the_heartbeat_thread_reports_a_lost_lease(tmp_path):
    clock = FakeClock(T0)
    stalled = JobLease(
        str(tmp_path), job_id="j", heartbeat_s=0.01, ttl_s=TTL_S, clock=clock, sleep=clock.advance
    )
    stalled.acquire()
    clock.advance(TTL_S + 1)
    _lease(tmp_path, clock, host="node-b", pid=202).acquire()
    lost: list[BaseException] = []
    reported = threading.Event()

    stalled.start_heartbeats(lambda error: (lost.append(error), reported.set()))

    assert reported.wait(timeout=10)
    stalled.release()
    assert len(lost) == 1 and "lost its lease" in str(lost[0])


def test_a_refused_run_leaves_no_record_behind(tmp_path):
    clock = FakeClock(T0)
    first = _lease(tmp_path, clock, pid=101)
    first.acquire()
    with pytest.raises(JobAlreadyRunningError):
        _lease(tmp_path, clock, pid=202).acquire()
    first.release()

    assert list(tmp_path.iterdir()) == []


def test_a_run_interrupted_while_taking_the_lease_leaves_no_record_behind(tmp_path):
    clock = FakeClock(T0)

    def interrupted(seconds: float) -> None:  # Ctrl-C during the settle, record written
        raise KeyboardInterrupt

    lease = JobLease(str(tmp_path), job_id="j", clock=clock, sleep=interrupted, host="node-a")
    with pytest.raises(KeyboardInterrupt):
        lease.acquire()

    assert list(tmp_path.glob("*.json*")) == [] and lease.record is None
    _lease(tmp_path, clock, host="node-b").acquire()  # the next run is not refused


def test_the_lease_works_on_s3(s3_server, s3_bucket):
    folder = s3_server.uri(s3_bucket, "ckpt/j/lease")
    clock = FakeClock(T0)
    first = JobLease(folder, job_id="j", clock=clock, sleep=clock.advance, host="node-a", pid=101)
    first.acquire()
    second = JobLease(folder, job_id="j", clock=clock, sleep=clock.advance, host="node-b", pid=202)
    with pytest.raises(JobAlreadyRunningError, match="'node-a'"):
        second.acquire()

    clock.advance(HEARTBEAT_S)
    first.heartbeat()
    first.release()

    assert second.acquire().host == "node-b"


# -- the engine ---------------------------------------------------------------------------------


def _endless(tmp_path: Path) -> Pipeline:
    """Runs until stopped: an unbounded source with no end marker."""
    source = TestSource([rows(20, s) for s in range(0, 100, 20)], unbounded=True)
    return (
        Pipeline.read(source, batch_size=20)
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
    )


def _bounded(tmp_path: Path) -> Pipeline:
    source = TestSource([rows(20, s) for s in range(0, 100, 20)])
    return (
        Pipeline.read(source, batch_size=20)
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
    )


@pytest.mark.ray
def test_a_second_run_of_a_live_job_is_refused_at_start_and_a_rerun_after_it_works(
    ray_session, tmp_path
):
    ckpt = CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.3)
    first = _endless(tmp_path).start(job_id="lease", checkpoint=ckpt)
    try:
        asked = time.monotonic()
        with pytest.raises(JobAlreadyRunningError) as refused:
            _endless(tmp_path).start(job_id="lease", checkpoint=ckpt)
        assert time.monotonic() - asked < 5  # at start, not at its first checkpoint
        assert f"process id {os.getpid()}" in str(refused.value)
        assert not first.done()
    finally:
        first.stop()
    first.wait(timeout=60)

    rerun = _bounded(tmp_path).run(job_id="lease", checkpoint=ckpt, progress=False)

    assert rerun.run == 2
    assert rerun.restored_from is not None
    assert CollectingSink.read(str(tmp_path / "out")).num_rows == 100


@pytest.mark.ray
def test_a_lease_left_by_a_killed_process_does_not_block_a_new_run(ray_session, tmp_path):
    killed = subprocess.Popen(["sleep", "60"])
    killed.kill()  # SIGKILL: it gives nothing back
    killed.wait()
    # What such a run leaves: its lease record, with a fresh heartbeat and a dead pid.
    JobLease(str(tmp_path / "ckpt" / "k" / "lease"), job_id="k", pid=killed.pid).acquire()

    with capture_logs() as logs:
        result = _bounded(tmp_path).run(
            job_id="k", checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt")), progress=False
        )

    assert result.rows_out == 100
    [taken] = [e for e in logs if e["event"] == "lease.taken_over"]
    assert taken["previous_pid"] == killed.pid


@pytest.mark.ray
def test_jobs_without_checkpoints_run_side_by_side_under_one_job_id(ray_session, tmp_path):
    first = _endless(tmp_path).start(job_id="free")
    try:
        second = _bounded(tmp_path).start(job_id="free")
        assert second.wait(timeout=60).rows_out == 100
    finally:
        first.stop()
    first.wait(timeout=60)
