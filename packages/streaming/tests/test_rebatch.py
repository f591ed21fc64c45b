"""Re-batching before a stage (``map_batches(fn, batch_size=N)``): the cutting logic without
Ray, and a job on a real local Ray whose stage after a fan-out sees batches of N rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pytest
from _udfs import fan_out_7, rows, tag_batch

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming._execution.state import Batch
from tideflow.streaming._operators.base import OperatorHooks
from tideflow.streaming._operators.pool_map import PoolMapOperator
from tideflow.streaming._operators.rebatch import Rebatcher
from tideflow.streaming._plan import StageSpec
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestSource


class Holds:
    """Counts holds per epoch as the executor does (each input batch arrives held)."""

    def __init__(self) -> None:
        self.pending: Counter[int] = Counter()
        self.released: list[Any] = []

    def arrive(self, batch: Batch) -> Batch:
        self.pending[batch.epoch] += 1
        return batch

    def hold(self, batch: Batch) -> None:
        self.pending[batch.epoch] += 1

    def release(self, batch: Batch) -> None:
        self.pending[batch.epoch] -= 1
        self.released.append(batch.ref)


def concat(refs: list[Any], skip: int, rows: int) -> tuple[Any, ...]:
    return ("cut", tuple(refs), skip, rows)


def rebatcher(size: int, holds: Holds) -> Rebatcher:
    return Rebatcher(size, hold=holds.hold, release=holds.release, concat=concat)


def test_small_batches_are_joined_and_cut_in_order_and_the_rest_goes_when_upstream_is_done():
    holds = Holds()
    r = rebatcher(4, holds)
    assert r.add(holds.arrive(Batch(epoch=1, ref="a", rows=3))) == []
    first = r.add(holds.arrive(Batch(epoch=1, ref="b", rows=3)))
    assert [(b.ref, b.rows) for b in first] == [(("cut", ("a", "b"), 0, 4), 4)]
    second = r.add(holds.arrive(Batch(epoch=1, ref="c", rows=3)))
    assert [b.ref for b in second] == [("cut", ("b", "c"), 1, 4)]
    assert holds.released == ["a", "b"]  # each input lets go once its last row left
    assert r.rows == 1 and r.held == 1
    assert r.flush({1}) == []  # upstream still holds rows of epoch 1: wait for company
    rest = r.flush({2})
    assert [(b.ref, b.rows) for b in rest] == [(("cut", ("c",), 2, 1), 1)]
    assert holds.released == ["a", "b", "c"] and r.held == 0
    # Three batches out, each holding epoch 1; every input's hold was dropped.
    assert holds.pending[1] == 3


def test_a_later_epoch_waits_while_an_earlier_one_keeps_rows_back():
    holds = Holds()
    r = rebatcher(4, holds)
    assert r.add(holds.arrive(Batch(epoch=1, ref="old", rows=2))) == []
    assert r.add(holds.arrive(Batch(epoch=2, ref="new", rows=4))) == []  # behind epoch 1
    assert r.flush({1, 2}) == []
    out = r.flush({2})  # epoch 1 is done upstream: its rest, then epoch 2's full batch
    assert [b.ref for b in out] == ["old", "new"]


def test_a_large_batch_is_cut_into_slices_of_the_size():
    holds = Holds()
    r = rebatcher(4, holds)
    out = r.add(holds.arrive(Batch(epoch=3, ref="big", rows=10, priority=2)))
    assert [b.ref for b in out] == [("cut", ("big",), 0, 4), ("cut", ("big",), 4, 4)]
    assert all(b.epoch == 3 and b.priority == 2 for b in out)
    assert holds.released == []  # two rows of it still wait
    (last,) = r.flush(set())
    assert last.ref == ("cut", ("big",), 8, 2)
    assert holds.released == ["big"] and holds.pending[3] == 3


def test_a_batch_of_the_size_goes_on_as_it_is_without_a_cut():
    holds = Holds()
    r = rebatcher(5, holds)
    batch = holds.arrive(Batch(epoch=1, ref="five", rows=5))
    assert r.add(batch) == [batch]
    assert holds.pending[1] == 1 and holds.released == []


def test_epochs_and_priorities_are_never_mixed_in_one_batch():
    holds = Holds()
    r = rebatcher(4, holds)
    r.add(holds.arrive(Batch(epoch=1, ref="e1", rows=2)))
    r.add(holds.arrive(Batch(epoch=2, ref="e2", rows=2)))
    r.add(holds.arrive(Batch(epoch=2, ref="urgent", rows=2, priority=9)))
    assert r.epochs() == {1, 2} and r.rows == 6
    (one,) = r.flush({2})  # epoch 2 is still being read upstream
    assert one.ref == "e1"  # a whole input goes on as it is
    later = r.flush(set())
    assert sorted(b.ref for b in later) == ["e2", "urgent"]
    assert {b.priority for b in later} == {0, 9}


def test_the_operator_queues_cut_batches_and_counts_what_it_keeps_back():
    holds = Holds()
    spec = StageSpec(name="model", udf=lambda t: t, batch_size=4)

    class Pool:  # nothing is dispatched in this test
        size = 1

    op = PoolMapOperator(
        spec,
        Pool(),  # type: ignore[arg-type]
        OperatorHooks(hold=holds.hold, release=holds.release),
        concat=concat,
    )
    op.add_input(holds.arrive(Batch(epoch=1, ref="a", rows=3)))
    assert len(op.queue) == 0 and op.held == 1 and op.held_epochs() == {1}
    op.add_input(holds.arrive(Batch(epoch=1, ref="b", rows=3)))
    assert [b.rows for b in op.queue] == [4] and op.held == 2
    op.note_upstream(set())
    assert [b.rows for b in op.queue] == [4, 2] and op.held == 2


def test_batch_size_is_checked():
    with pytest.raises(ConfigError, match="batch_size"):
        Pipeline.read(TestSource([rows(3)])).map_batches(lambda t: t, batch_size=0)
    with pytest.raises(ConfigError, match="unknown options"):
        Pipeline.read(TestSource([rows(3)])).map(lambda r: r, batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        Rebatcher(0, hold=print, release=print)


@pytest.mark.parametrize("value", [True, 2.5, "8"])
def test_batch_size_is_an_int_not_a_bool_or_another_number(value):
    with pytest.raises(ConfigError, match="batch_size is an int >= 1"):
        Pipeline.read(TestSource([rows(3)])).map_batches(lambda t: t, batch_size=value)


@pytest.mark.parametrize("value", [-1, True, 1.5])
def test_max_retries_is_an_int_of_at_least_zero(value):
    with pytest.raises(ConfigError, match=r"max_retries must be an int >= 0; got"):
        Pipeline.read(TestSource([rows(3)])).map_batches(lambda t: t, max_retries=value)


@pytest.mark.ray
def test_a_stage_after_a_fan_out_sees_batches_of_its_batch_size(ray_session, tmp_path):
    source = TestSource([rows(10, start) for start in range(0, 100, 10)])
    result = (
        Pipeline.read(source)
        .map_batches(fan_out_7, num_cpus=0.25)
        .map_batches(tag_batch, num_cpus=0.25, batch_size=16)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="rebatch",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck"), interval_s=3600.0),
        )
    )
    out = CollectingSink.read(str(tmp_path / "out"))
    pairs = list(zip(out.column("id").to_pylist(), out.column("sub").to_pylist(), strict=True))
    assert pairs == [(i, s) for i in range(100) for s in range(7)]  # all, once, in order
    sizes = Counter(out.column("batch_rows").to_pylist())
    # One epoch (a long interval): 700 rows = 43 batches of 16 and the last 12.
    assert sizes == {16: 688, 12: 12}
    assert len(set(out.column("batch_id").to_pylist())) == 44
    assert result.rows_out == 700


@pytest.mark.ray
def test_re_batching_keeps_epochs_apart_and_each_row_exactly_once_across_a_resume(
    ray_session, tmp_path
):
    source = TestSource([rows(10, start) for start in range(0, 120, 10)])
    pipe = (
        Pipeline.read(source)
        .map_batches(fan_out_7, num_cpus=0.25)
        .map_batches(tag_batch, num_cpus=0.25, batch_size=16)
        .write(CollectingSink(str(tmp_path / "out")))
    )
    ckpt = CheckpointConfig(uri=str(tmp_path / "ck"), max_batches=3)  # 210 rows an epoch
    result = pipe.run(job_id="rebatch-epochs", checkpoint=ckpt)
    again = pipe.run(job_id="rebatch-epochs", checkpoint=ckpt)
    out = CollectingSink.read(str(tmp_path / "out"))
    assert sorted(out.column("id").to_pylist()) == sorted(i for i in range(120) for _ in range(7))
    assert again.rows_out == 0
    ids, sizes = out.column("batch_id").to_pylist(), out.column("batch_rows").to_pylist()
    batches = dict(zip(ids, sizes, strict=True))
    assert max(batches.values()) == 16
    # A smaller batch only where an epoch ended: at most one per checkpoint.
    assert 0 < sum(1 for n in batches.values() if n < 16) <= len(result.checkpoints)


def test_ack_mode_refuses_re_batching():
    from tideflow.streaming._acks import check_ack_mode

    pipe = (
        Pipeline.read(TestSource([rows(3)], offsets=True))
        .map_batches(lambda t: t, batch_size=4)
        .write(CollectingSink("/tmp/unused"))
    )
    with pytest.raises(ConfigError, match="re-batch"):
        check_ack_mode(pipe.plan)


def test_a_stage_actor_joins_and_slices_rows_of_tables_and_stage_payloads():
    from tideflow.streaming._worker import StageWorker

    worker = StageWorker(StageSpec(name="s", udf=lambda t: t, batch_size=3))
    a = pa.table({"x": [0, 1, 2]})
    b = (pa.table({"x": [3, 4]}), None)  # a stage's payload: (rows, dead letters)
    result = worker.process_parts(1, 3, a, b)
    out, dead = result.value
    assert out.column("x").to_pylist() == [1, 2, 3]
    assert out.column("x").num_chunks == 1 and dead is None


class _Call:
    def __init__(self, args: tuple[Any, ...], isolated: bool) -> None:
        self.args, self.isolated = args, isolated
        self.error: BaseException | None = None

    def add_done_callback(self, callback: Any) -> None:
        pass

    def done(self) -> bool:
        return True

    def exception(self) -> BaseException | None:
        return self.error


class _RecordingPool:
    size = 1

    def __init__(self) -> None:
        self.calls: list[_Call] = []

    def submit(self, *args: Any, priority: int = 0, isolated: bool = False) -> _Call:
        self.calls.append(_Call(args, isolated))
        return self.calls[-1]


def test_the_stage_actor_joins_cut_batches_itself_and_halves_need_no_task():
    from tideflow.streaming._operators.rebatch import Parts

    pool = _RecordingPool()
    slices: list[Any] = []
    spec = StageSpec(name="model", udf=lambda t: t, batch_size=4, max_retries=0)
    op = PoolMapOperator(
        spec,
        pool,  # type: ignore[arg-type]
        OperatorHooks(),
        slice_rows=lambda *args: slices.append(args),
    )
    op.add_input(Batch(epoch=1, ref="a", rows=3))
    op.add_input(Batch(epoch=1, ref="b", rows=3))
    op.dispatch()
    assert pool.calls[0].args == ("process_parts", 0, 4, "a", "b")
    pool.calls[0].error = RuntimeError("actor died")
    assert op.take_ready() == []  # tried alone first
    pool.calls[1].error = RuntimeError("actor died")
    assert op.take_ready() == []  # then in halves, cut from the same parts
    assert [c.args for c in pool.calls[2:]] == [
        ("process_parts", 0, 2, "a", "b"),
        ("process_parts", 2, 2, "a", "b"),
    ]
    assert slices == []  # no slicing task for parts
    assert Parts(("a", "b"), 1, 4).slice(2, 2) == Parts(("a", "b"), 3, 2)
