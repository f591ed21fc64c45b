"""A run survives losing a part of the job: it starts again from its last checkpoint.

The parts that no pool replaces — the I/O actor (reads, sink and dead-letter writes), a
keyed stage's partition actors — are lost here the way a dead node loses them (the actor's
process dies); the job must end with every record exactly once, per key in order, with
``restarts`` counting the restarts and the row counts counting each row once. The same on
several nodes, with the node itself removed, is in the cluster tests.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import ray.exceptions as rex
from _udfs import CountPerKeyCrashOnce, Slow, SlowLogPid, count_per_key, rows

from tideflow.core.errors import ConfigError
from tideflow.streaming import CheckpointConfig, JobAbortedError, Pipeline
from tideflow.streaming._execution.nodes import NodeWatch
from tideflow.streaming._execution.options import RunOptions
from tideflow.streaming._execution.recovery import lost_part
from tideflow.streaming._execution.state import EpochCounts
from tideflow.streaming.testing import CollectingSink, TestSource

N = 1200
BATCH = 40


# -- without Ray ---------------------------------------------------------------------------


def test_a_dead_actor_and_a_lost_object_are_losses_and_a_failing_function_is_not():
    died = rex.ActorDiedError()
    lost = rex.ObjectLostError("ab" * 14, "", "")
    user = rex.RayTaskError("fn", "traceback", ValueError("bad row"))

    assert lost_part(died) is not None and lost_part(died).kind == "actor"
    assert lost_part(lost) is not None and lost_part(lost).kind == "object"
    assert lost_part(user) is None
    assert lost_part(ValueError("bad row")) is None


def test_an_actor_whose_constructor_raised_is_not_a_loss():
    """A restart would build it again and fail the same way: the job fails at once."""
    raised = rex.ActorDiedError(rex.RayTaskError("StageWorker.__init__", "tb", OSError("no")))
    assert raised.actor_init_failed
    assert lost_part(raised) is None
    assert lost_part(rex.ActorDiedError()) is not None  # its process died: a loss


def test_a_loss_is_found_under_the_errors_raised_from_it():
    try:
        try:
            raise rex.ActorDiedError()
        except rex.ActorDiedError as error:
            raise RuntimeError("writing failed") from error
    except RuntimeError as outer:
        found = lost_part(outer)
    assert found is not None and found.kind == "actor"


def test_epoch_counts_take_back_only_the_epochs_after_the_last_commit():
    counts = EpochCounts()
    counts.add(1, rows_in=10, rows_out=9, dead_letters=1)
    counts.add(2, rows_in=5, rows_out=5)
    counts.add(3, rows_in=7)
    assert counts.uncommitted(1) == (12, 5, 0)
    assert counts.uncommitted(None) == (22, 14, 1)
    counts.forget_through(2)
    assert set(counts.by_epoch) == {3}


def test_node_watch_reports_each_draining_node_once_and_looks_at_most_every_period():
    seen = [set(), {"a"}, {"a", "b"}, {"b"}]
    looks = []

    def draining() -> set[str]:
        looks.append(1)
        return seen[min(len(looks) - 1, len(seen) - 1)]

    watch = NodeWatch(every_s=0.25, draining=draining)
    assert watch.poll(0.0) == set()
    assert watch.poll(0.1) == set() and len(looks) == 1  # not yet time to look again
    assert watch.poll(0.25) == {"a"}
    assert watch.poll(0.5) == {"b"}
    assert watch.poll(0.75) == set()


@pytest.mark.parametrize("bad", [-1, 100, True, 1.5])
def test_max_restarts_must_be_an_int_from_0_to_99(bad):
    with pytest.raises(ConfigError, match="max_restarts"):
        RunOptions(max_restarts=bad)


# -- on a local Ray ------------------------------------------------------------------------


def _source() -> TestSource:
    return TestSource([rows(BATCH, start) for start in range(0, N, BATCH)])


def _ckpt(tmp_path: Path) -> CheckpointConfig:
    return CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.3, retain=50)


def _assert_exactly_once_in_key_order(out_dir: Path) -> None:
    out = CollectingSink.read(str(out_dir)).to_pylist()
    ids = Counter(r["id"] for r in out)
    assert set(ids) == set(range(N)), f"missing {sorted(set(range(N)) - set(ids))[:10]}"
    assert max(ids.values()) == 1, f"duplicated {[i for i, c in ids.items() if c > 1][:10]}"
    per_key: dict[int, list[dict]] = {}
    for r in out:
        per_key.setdefault(r["key"], []).append(r)
    for key_rows in per_key.values():
        assert [r["n"] for r in key_rows] == list(range(1, len(key_rows) + 1))


def _crashing_keyed(tmp_path: Path, *, slow: bool) -> Pipeline:
    """A keyed stage whose partition actor dies once (at row N / 2; flag file ``crashed``)."""
    pipe = Pipeline.read(_source(), batch_size=BATCH)
    if slow:
        pipe = pipe.map_batches(Slow, num_cpus=0.25, fn_constructor_args=(0.01,))
    return pipe.stateful_map(
        "key",
        CountPerKeyCrashOnce,
        partitions=2,
        num_cpus=0.25,
        fn_constructor_args=(N // 2, str(tmp_path / "crashed")),
    ).write(CollectingSink(str(tmp_path / "out")))


def _kill_io_actor_once_rows_are_out(job, name: str, after_rows: int) -> threading.Thread:
    """Kill the job's I/O actor (as a dead node would) once ``after_rows`` were written."""
    import ray

    def kill() -> None:
        deadline = time.monotonic() + 60
        while job.progress.rows_out < after_rows and time.monotonic() < deadline:
            time.sleep(0.02)
        ray.kill(ray.get_actor(name))

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.ray
def test_a_lost_io_actor_restarts_the_run_from_its_checkpoint_exactly_once(ray_session, tmp_path):
    out, pids = tmp_path / "out", tmp_path / "pids"
    job = (
        Pipeline.read(_source(), batch_size=BATCH)
        .map_batches(SlowLogPid, num_cpus=0.25, fn_constructor_args=(0.01, str(pids)))
        .stateful_map("key", count_per_key, partitions=2, num_cpus=0.25)
        .write(CollectingSink(str(out)))
        .start(job_id="lost-io", checkpoint=_ckpt(tmp_path))
    )
    killer = _kill_io_actor_once_rows_are_out(job, "tideflow-io:lost-io:1.0", N // 3)
    result = job.wait(timeout=240)
    killer.join(5)

    assert result.restarts == 1
    _assert_exactly_once_in_key_order(out)
    assert (result.rows_in, result.rows_out) == (N, N)  # replayed rows count once
    # The map stage's pool went on into the restart: its one actor ran every batch.
    assert len(set(pids.read_text().split())) == 1
    assert result.stages["SlowLogPid"].actor_deaths == 0


@pytest.mark.ray
def test_a_lost_keyed_partition_restarts_from_its_checkpointed_state(ray_session, tmp_path):
    flag = tmp_path / "crashed"
    out = tmp_path / "out"
    result = _crashing_keyed(tmp_path, slow=True).run(
        job_id="lost-keyed", checkpoint=_ckpt(tmp_path)
    )

    assert flag.exists()  # the partition did die
    assert result.restarts == 1
    _assert_exactly_once_in_key_order(out)


@pytest.mark.ray
def test_with_no_restarts_left_a_loss_stops_the_job_and_a_rerun_finishes_it(ray_session, tmp_path):
    out = tmp_path / "out"
    pipe = _crashing_keyed(tmp_path, slow=False)
    with pytest.raises(JobAbortedError, match=r"lost a part \(actor.*max_restarts=0"):
        pipe.run(job_id="no-restarts", checkpoint=_ckpt(tmp_path), max_restarts=0)
    rerun = pipe.run(job_id="no-restarts", checkpoint=_ckpt(tmp_path), max_restarts=0)

    assert rerun.run == 2 and rerun.restarts == 0
    _assert_exactly_once_in_key_order(out)


def test_a_restart_takes_back_the_uncommitted_counts_and_the_budget_runs_out(tmp_path, monkeypatch):
    """The executor's decision after a failed attempt, without Ray: a stand-in attempt
    (its last committed epoch and its per-epoch counts) and a real lease on the job."""
    from types import SimpleNamespace

    from tideflow.streaming import _executor
    from tideflow.streaming._executor import Executor

    monkeypatch.setattr(_executor, "_RESTART_DELAY_S", 0.0)
    plan = Pipeline.read(_source()).write(CollectingSink(str(tmp_path / "out")))._plan
    executor = Executor(
        plan, job_id="decide", options=RunOptions(checkpoint=_ckpt(tmp_path), max_restarts=1)
    )
    try:
        counts = EpochCounts()
        counts.add(3, rows_in=80, rows_out=80)
        counts.add(4, rows_in=40, rows_out=0, dead_letters=2)
        attempt = SimpleNamespace(
            coordinator=SimpleNamespace(last_completed=3, events=()), counts=counts
        )
        executor.result.rows_in, executor.result.rows_out = 200, 160
        executor.result.dead_letters = 2

        assert executor._restart_after(attempt, rex.ActorDiedError()) is True
        assert (executor.result.rows_in, executor.result.rows_out) == (160, 160)
        assert executor.result.dead_letters == 0 and executor.result.restarts == 1
        assert executor._restart_after(attempt, ValueError("a bug")) is False  # not a loss
        with pytest.raises(JobAbortedError, match=r"after 1 restart\(s\).*max_restarts=1"):
            executor._restart_after(attempt, rex.ActorDiedError())
    finally:
        executor.jobdir.end_run()
