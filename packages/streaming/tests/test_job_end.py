"""How a run went is in its result: ``JobResult.stopped`` when it was stopped before its
source ended (``Job.stop()``, Ctrl-C in ``run()``), not when the source ran out; each
stage's retries and actor deaths."""

from __future__ import annotations

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
