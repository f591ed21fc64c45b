"""How a run went is in its result: ``JobResult.stopped`` when it was stopped before its
source ended (``Job.stop()``, Ctrl-C in ``run()``), not when the source ran out; each
stage's retries and actor deaths."""

from __future__ import annotations

import os
import signal
import time

import pytest
from _udfs import CrashOnce, add_one, rows

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.testing import CollectingSink, TestSource


@pytest.mark.ray
def test_a_stopped_run_says_so_and_a_finished_one_does_not(ray_session, tmp_path):
    items = [rows(10), TestSource.PAUSE(600)]
    live = (
        Pipeline.read(TestSource(items, unbounded=True))
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "live")))
    )
    job = live.start(job_id="stopped", checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")))
    started = time.monotonic()
    while job.progress.rows_out < 10 and time.monotonic() - started < 60:
        time.sleep(0.05)
    job.stop()
    stopped = job.wait(timeout=60)
    assert stopped.stopped and stopped.summary()["stopped"] is True
    assert stopped.rows_out == 10

    finished = (
        Pipeline.read(TestSource([rows(10)]))
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "bounded")))
        .run(job_id="finished", progress=False)
    )
    assert not finished.stopped and finished.rows_out == 10


@pytest.mark.ray
def test_a_stage_counts_its_actor_deaths_and_retries(ray_session, tmp_path):
    flag = tmp_path / "crashed"
    result = (
        Pipeline.read(TestSource([rows(10, 10 * b) for b in range(6)]))
        .map_batches(CrashOnce, num_cpus=0.25, fn_constructor_args=(25, str(flag)))
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(job_id="deaths", progress=False)
    )
    assert flag.exists() and result.rows_out == 60 and result.dead_letters == 0
    crashed, calm = result.stages["CrashOnce"], result.stages["add_one"]
    assert crashed.actor_deaths == 1 and crashed.retries >= 1
    assert (calm.actor_deaths, calm.retries) == (0, 0)


@pytest.mark.ray
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_in_run_stops_the_job_cleanly(ray_session, tmp_path, signum):
    """``docker stop`` / Kubernetes send SIGTERM: like Ctrl-C, the job stops at a checkpoint
    and ``run`` returns a stopped result (the process is not killed)."""
    sent: list[int] = []

    def signal_once_rows_are_out(progress) -> None:
        if progress.rows_out >= 10 and not sent:
            sent.append(signum)
            os.kill(os.getpid(), signum)  # run() handles it on the main thread

    before = signal.getsignal(signum)
    result = (
        Pipeline.read(TestSource([rows(10), TestSource.PAUSE(600)], unbounded=True))
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id=f"signalled-{signum}",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")),
            on_progress=signal_once_rows_are_out,
            progress=False,
        )
    )

    assert sent and result.stopped and result.rows_out == 10
    assert result.checkpoints  # the rows read are committed: a rerun goes on from there
    assert signal.getsignal(signum) is before  # run() put the handler back
