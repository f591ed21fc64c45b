"""Keyed timers and the end-of-input hook on a real local Ray: what a keyed stage keeps is
flushed at the end of a bounded input exactly once, by a timer while the source is live,
and by a timer restored from a checkpoint after a crash."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _udfs import KEYS, add_one, flush_group, gather_three, rest_of_group, rows

from tideflow.streaming import CheckpointConfig, Job, Pipeline
from tideflow.streaming.testing import CollectingSink, TestSource

pytestmark = pytest.mark.ray

N = 95  # ids 0..94: 13 or 14 per key, so every key keeps a partial group at the end


def _ckpt(tmp_path: Path) -> CheckpointConfig:
    return CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.2, retain=50)


def _groups(out: Path) -> list[dict[str, Any]]:
    table = CollectingSink.read(str(out))
    return table.select(["key", "ids", "complete"]).to_pylist() if table.num_rows else []


def _wait_for(out: Path, count: int, job: Job, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """The committed groups once there are ``count`` of them (the job is stopped then)."""
    deadline = time.monotonic() + timeout_s
    try:
        while len(_groups(out)) < count and time.monotonic() < deadline:
            assert not job.done(), "the job ended"
            time.sleep(0.1)
    finally:
        job.stop()
        job.wait(timeout=60)
    return _groups(out)


def _gathered(source: TestSource, out: Path, *, between: bool = False, **hooks: Any) -> Pipeline:
    """Groups of three ids per key (2 partitions); ``between``: a stage before and after."""
    pipe = Pipeline.read(source, batch_size=5)
    if between:
        pipe = pipe.map_batches(add_one, num_cpus=0.25)
    pipe = pipe.stateful_map("key", gather_three, partitions=2, num_cpus=0.25, **hooks)
    if between:
        pipe = pipe.map(lambda group: {**group, "size": len(group["ids"])}, num_cpus=0.25)
    return pipe.write(CollectingSink(str(out)))


def test_on_end_flushes_the_partial_groups_of_a_bounded_input_exactly_once(ray_session, tmp_path):
    source = TestSource([rows(5, start) for start in range(0, N, 5)])
    lost = _gathered(source, tmp_path / "lost", between=True)
    lost_result = lost.run(job_id="lost", checkpoint=_ckpt(tmp_path))
    flushed = _gathered(source, tmp_path / "out", between=True, on_end=rest_of_group)
    first = flushed.run(job_id="end", checkpoint=_ckpt(tmp_path))
    again = flushed.run(job_id="end", checkpoint=_ckpt(tmp_path))

    per_key = Counter(i % KEYS for i in range(N))
    complete = sum(n // 3 for n in per_key.values())
    assert lost_result.rows_out == complete  # without on_end the partial groups are lost
    groups = _groups(tmp_path / "out")
    ids = Counter(i for g in groups for i in g["ids"])
    assert set(ids) == set(range(N)) and max(ids.values()) == 1
    partial = [g for g in groups if not g["complete"]]
    assert sorted(g["key"] for g in partial) == list(range(KEYS))  # one per key, at the end
    for g in partial:
        assert g["ids"] == [i for i in range(N) if i % KEYS == g["key"]][-len(g["ids"]) :]
    last = CollectingSink.committed_epochs(str(tmp_path / "out"))[-1]
    in_last = CollectingSink.read_epoch(str(tmp_path / "out"), last).to_pylist()
    assert sorted(g["key"] for g in in_last if not g["complete"]) == list(range(KEYS))
    assert all(g["size"] == len(g["ids"]) for g in in_last)  # through the stage after it
    assert (first.rows_out, len(groups)) == (complete + KEYS, complete + KEYS)
    assert again.restored_from is not None and again.rows_out == 0
    assert _groups(tmp_path / "out") == groups  # the finished job run again wrote nothing


def test_a_timer_flushes_an_idle_key_while_the_source_is_live(ray_session, tmp_path):
    # ids 0..9: keys 0-2 get two ids, keys 3-6 one; no group completes, the source waits.
    source = TestSource([rows(10), TestSource.PAUSE(600)], unbounded=True)
    pipe = _gathered(source, tmp_path / "out", on_timer=flush_group, timer_s=0.5)
    job = pipe.start(job_id="timer", checkpoint=_ckpt(tmp_path))

    groups = _wait_for(tmp_path / "out", KEYS, job)
    assert sorted((g["key"], g["ids"], g["complete"]) for g in groups) == [
        (k, [i for i in range(10) if i % KEYS == k], False) for k in range(KEYS)
    ]


def test_a_timer_armed_before_a_crash_fires_after_the_restore(ray_session, tmp_path):
    # Run 1 reads ids 0..2, checkpoints during the pause and crashes at the abort, well
    # before the timers (5 s) are due; run 2 reads nothing new: only restored timers flush.
    items = [rows(3), TestSource.PAUSE(1.5), TestSource.ABORT(run=1), TestSource.PAUSE(600)]
    pipe = _gathered(
        TestSource(items, unbounded=True), tmp_path / "out", on_timer=flush_group, timer_s=5.0
    )
    with pytest.raises(Exception, match=r"TestAbort|abort"):
        pipe.run(job_id="restore", checkpoint=_ckpt(tmp_path))
    assert _groups(tmp_path / "out") == []

    job = pipe.start(job_id="restore", checkpoint=_ckpt(tmp_path))
    groups = _wait_for(tmp_path / "out", 3, job)
    result = job.wait(timeout=60)
    assert result.restored_from is not None and result.rows_in == 0
    assert sorted((g["key"], g["ids"]) for g in groups) == [(0, [0]), (1, [1]), (2, [2])]


def test_a_stopped_job_keeps_its_keys_and_the_rerun_that_reaches_the_end_flushes_them(
    ray_session, tmp_path
):
    # The stop comes during the pause (run 1 never reaches the end); run 2 pauses again at
    # the same marker, then meets the end of the stream.
    source = TestSource([rows(10), TestSource.PAUSE(4.0), TestSource.EOF], unbounded=True)
    pipe = _gathered(source, tmp_path / "out", on_end=rest_of_group)
    job = pipe.start(job_id="stop", checkpoint=_ckpt(tmp_path))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        gather = job.progress.stages.get("gather_three")
        if gather is not None and gather.rows_in == 10:
            break
        time.sleep(0.05)
    job.stop()
    stopped = job.wait(timeout=60)
    assert stopped.stopped and _groups(tmp_path / "out") == []

    finished = pipe.run(job_id="stop", checkpoint=_ckpt(tmp_path))
    assert not finished.stopped and finished.rows_in == 0
    assert sorted((g["key"], g["ids"], g["complete"]) for g in _groups(tmp_path / "out")) == [
        (k, [i for i in range(10) if i % KEYS == k], False) for k in range(KEYS)
    ]
