"""Fault injection in the style of Flink's unaligned-checkpoint ITCase.

One pipeline — a map stage (2 actors), a keyed stateful stage (2 partitions) and a
two-phase sink — with failures injected (a) in the map stage, (b) while a checkpoint is
being written, (c) during recovery, (d) by SIGKILL of the driver. Each time the sink must
hold every input record exactly once, per key in order, and at most about one checkpoint
interval of input may be processed again.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from _udfs import CrashOnce, FailOn, FlakySink, Slow, count_per_key, rows

from tideflow.core.checkpoint import CheckpointStore
from tideflow.streaming import CheckpointConfig, JobAbortedError, Pipeline
from tideflow.streaming.testing import CollectingSink, TestSource

pytestmark = pytest.mark.ray

N = 2000
BATCH = 50


def _source(*, abort_at: int | None = None) -> TestSource:
    items: list = [rows(BATCH, start) for start in range(0, N, BATCH)]
    if abort_at is None:
        return TestSource(items)
    # An idle second before the abort lets the first run complete checkpoints however
    # fast or slow this machine is; the stream ends at the EOF marker.
    items[abort_at:abort_at] = [TestSource.PAUSE(1.0), TestSource.ABORT(run=1)]
    return TestSource([*items, TestSource.EOF], unbounded=True)


def _pipeline(source, sink, stage, **stage_options) -> Pipeline:
    return (
        Pipeline.read(source, batch_size=BATCH)
        .map_batches(stage, num_cpus=0.25, concurrency=2, **stage_options)
        .stateful_map("key", count_per_key, partitions=2, num_cpus=0.25)
        .write(sink)
    )


def _assert_exactly_once_in_key_order(out_dir: Path, expected: set[int]) -> None:
    out = CollectingSink.read(str(out_dir)).to_pylist()
    ids = Counter(r["id"] for r in out)
    assert set(ids) == expected, f"missing {sorted(expected - set(ids))[:10]}"
    assert max(ids.values()) == 1, f"duplicated {[i for i, c in ids.items() if c > 1][:10]}"
    per_key: dict[int, list[dict]] = {}
    for r in out:
        per_key.setdefault(r["key"], []).append(r)
    for key_rows in per_key.values():
        assert [r["id"] for r in key_rows] == sorted(r["id"] for r in key_rows)
        assert [r["n"] for r in key_rows] == list(range(1, len(key_rows) + 1))


def _ckpt(tmp_path: Path, interval_s: float = 0.3) -> CheckpointConfig:
    return CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=interval_s, retain=50)


def test_a_record_that_raises_goes_to_the_dead_letters_and_the_rest_is_exact(ray_session, tmp_path):
    dead = tmp_path / "dead"
    result = _pipeline(
        _source(), CollectingSink(str(tmp_path / "out")), FailOn, fn_constructor_args=(400,)
    ).run(job_id="a1", checkpoint=_ckpt(tmp_path), dead_letter=CollectingSink(str(dead)))

    bad = {i for i in range(N) if i % 400 == 399}
    _assert_exactly_once_in_key_order(tmp_path / "out", set(range(N)) - bad)
    letters = CollectingSink.read(str(dead)).to_pylist()
    assert sorted(json.loads(r["record"])["id"] for r in letters) == sorted(bad)
    assert all("cannot process id" in r["error"] and r["stage"] == "FailOn" for r in letters)
    assert result.dead_letters == len(bad)


def test_an_actor_killed_mid_batch_is_replaced_and_its_batch_retried(ray_session, tmp_path):
    flag = tmp_path / "crashed"
    result = _pipeline(
        _source(),
        CollectingSink(str(tmp_path / "out")),
        CrashOnce,
        fn_constructor_args=(1234, str(flag)),
    ).run(job_id="a2", checkpoint=_ckpt(tmp_path))

    assert flag.exists()  # the actor did die
    _assert_exactly_once_in_key_order(tmp_path / "out", set(range(N)))
    assert result.dead_letters == 0


def test_a_failure_while_a_checkpoint_is_written_then_a_rerun_is_exact(ray_session, tmp_path):
    flag = str(tmp_path / "tripped")
    sink = FlakySink(str(tmp_path / "out"), flag, precommit_epoch=3)
    # 40 batches × 80 ms on 2 actors: ≥ 1.6 s, so epoch 3 (barriers every 0.3 s) exists.
    pipe = _pipeline(_source(), sink, Slow, fn_constructor_args=(0.08,))
    with pytest.raises(Exception, match="disk full"):
        pipe.run(job_id="b", checkpoint=_ckpt(tmp_path))
    assert Path(flag).exists()
    rerun = pipe.run(job_id="b", checkpoint=_ckpt(tmp_path))

    assert rerun.run == 2
    _assert_exactly_once_in_key_order(tmp_path / "out", set(range(N)))


def test_a_failed_commit_stops_the_job_and_a_rerun_commits_that_epoch(ray_session, tmp_path):
    flag = str(tmp_path / "tripped")
    sink = FlakySink(str(tmp_path / "out"), flag, commit_epoch=2)
    pipe = _pipeline(_source(), sink, Slow, fn_constructor_args=(0.01,))
    with pytest.raises(JobAbortedError, match="committing epoch"):
        pipe.run(job_id="commit", checkpoint=_ckpt(tmp_path, interval_s=0.1))
    assert Path(flag).exists()
    rerun = pipe.run(job_id="commit", checkpoint=_ckpt(tmp_path, interval_s=0.1))

    assert rerun.restored_from is not None
    _assert_exactly_once_in_key_order(tmp_path / "out", set(range(N)))


def test_a_failure_during_recovery_then_another_rerun_is_exact(ray_session, tmp_path):
    flag = str(tmp_path / "tripped")
    sink = FlakySink(str(tmp_path / "out"), flag, recover_run=2)
    pipe = _pipeline(_source(abort_at=3 * N // BATCH // 4), sink, Slow, fn_constructor_args=(0.02,))
    with pytest.raises(Exception, match=r"TestAbort|abort"):
        pipe.run(job_id="c", checkpoint=_ckpt(tmp_path))
    with pytest.raises(OSError, match="during recovery"):
        pipe.run(job_id="c", checkpoint=_ckpt(tmp_path))
    third = pipe.run(job_id="c", checkpoint=_ckpt(tmp_path))

    assert third.run == 3
    assert third.restored_from is not None
    _assert_exactly_once_in_key_order(tmp_path / "out", set(range(N)))


def _positions(store: CheckpointStore) -> list[int]:
    """Rows before each retained checkpoint's barrier (the TestSource state is an index)."""
    sums = []
    for info in store.list():
        source = store.load(info.checkpoint_id).states["source"]
        sums.append(sum(int(v) for v in source["positions"].values()) * BATCH)
    return sums


def test_driver_killed_with_sigkill_then_rerun_resumes_exactly(ray_session, tmp_path):
    log = tmp_path / "processed.log"
    script = Path(__file__).with_name("_driver.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(log), str(N), str(BATCH)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = CheckpointStore(str(tmp_path / "ckpt" / "d" / "checkpoints"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(store.ids()) < 3:
            assert child.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.1)
        assert len(store.ids()) >= 3, "no checkpoints within 120 s"
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    before = log.read_text().split() if log.exists() else []
    assert len(before) < N, "the job finished before it was killed"

    pipe = _pipeline(
        _source(), CollectingSink(str(tmp_path / "out")), Slow, fn_constructor_args=(0.02, str(log))
    )
    rerun = pipe.run(job_id="d", checkpoint=_ckpt(tmp_path))

    _assert_exactly_once_in_key_order(tmp_path / "out", set(range(N)))
    counts = Counter(log.read_text().split())
    again = sum(c - 1 for c in counts.values())
    marks = _positions(store)
    interval_rows = max(b - a for a, b in itertools.pairwise(marks))
    # In flight at a barrier: the read-ahead and the bounded queues of the stages.
    slack = (4 + 2 * 8) * BATCH
    assert rerun.restored_from is not None
    assert again <= interval_rows + slack, (again, interval_rows, slack)
