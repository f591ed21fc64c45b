"""Commits run on the committer thread: a slow sink commit does not stall the job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _udfs import Slow, SlowCommitSink, rows

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.testing import CollectingSink, TestSource

pytestmark = pytest.mark.ray

N = 600


def test_the_job_keeps_reading_while_a_commit_is_slow(ray_session, tmp_path):
    release = tmp_path / "release"
    # The commit of epoch 1 waits until every row was read (or 20 s).
    sink = SlowCommitSink(str(tmp_path / "out"), str(release), epoch=1, wait_s=20.0)
    job = (
        Pipeline.read(TestSource([rows(20, start) for start in range(0, N, 20)]))
        .map_batches(Slow, fn_constructor_args=(0.08,), num_cpus=0.25)
        .write(sink)
        .start(
            job_id="slow-commit",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck"), interval_s=0.2),
        )
    )
    deadline = time.monotonic() + 60.0
    while job.progress.rows_in < N and not job.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    release.touch()
    result = job.wait(60.0)

    note = json.loads(Path(f"{release}.commit").read_text())
    # Epoch 1 began committing before all was read, and the rest was read meanwhile.
    assert note == {"there_at_start": False, "released": True}
    assert result.committed_epochs[0] == 1
    out = CollectingSink.read(str(tmp_path / "out"))
    assert sorted(out.column("id").to_pylist()) == list(range(N))
