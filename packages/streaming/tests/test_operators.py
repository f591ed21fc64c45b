"""The physical operators' bookkeeping and the planner table, without Ray: the operators
take a fake pool or fake actors through their seams."""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from typing import Any

import pytest
from _fake_actors import FakeActor

from tideflow.streaming._execution.state import Batch
from tideflow.streaming._operators.base import OperatorHooks
from tideflow.streaming._operators.keyed import KeyedOperator
from tideflow.streaming._operators.pool_map import PoolMapOperator
from tideflow.streaming._plan import Plan, StageSpec
from tideflow.streaming._planner import PLANNERS, planner_for, restore_states, stateful_stages
from tideflow.streaming.errors import ConfigError, JobAbortedError
from tideflow.streaming.testing import TestSource


def _identity(table: Any) -> Any:
    return table


def _spec(name: str = "s", **fields: Any) -> StageSpec:
    return StageSpec(name=name, udf=_identity, **fields)


def _meta(rows: int) -> dict[str, Any]:
    return {"rows_in": rows, "rows_out": rows, "dead": 0, "start": 0.0, "end": 1.0}


# -- the pool-map operator ------------------------------------------------------------------


class _Future:
    def __init__(self, ref: Any, isolated: bool) -> None:
        self.ref, self.isolated = ref, isolated
        self._done, self._error = False, None
        self.callbacks: list[Any] = []
        self.meta = _meta(1)
        self.object_ref = f"out:{ref}"

    def add_done_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def finish(self, error: BaseException | None = None) -> None:
        self._done, self._error = True, error

    def cancel(self) -> bool:
        self.cancelled = not self._done
        return self.cancelled

    def done(self) -> bool:
        return self._done

    def exception(self) -> BaseException | None:
        return self._error


class _Pool:
    """What PoolMapOperator uses of an ActorPool: submit, size, events and stats."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self.submitted: list[_Future] = []
        self.events: list[Any] = []
        self.stats = SimpleNamespace(retries=0, deaths=0, ready=size)
        self.reusable = True
        self.shut = False

    def shutdown(self, **_: Any) -> None:
        self.shut = True

    def submit(self, method: str, ref: Any, *, priority: int = 0, isolated: bool = False):
        future = _Future(ref, isolated)
        self.submitted.append(future)
        return future


def _pool_op(**fields: Any) -> tuple[PoolMapOperator, _Pool, list[Batch]]:
    held: list[Batch] = []
    pool = _Pool()
    op = PoolMapOperator(
        _spec(**fields),
        pool,
        OperatorHooks(hold=held.append),
        slice_rows=lambda ref, start, length: f"{ref}[{start}:{start + length}]",
    )
    return op, pool, held


def _feed(op: PoolMapOperator, *batches: Batch) -> None:
    for batch in batches:
        op.add_input(batch)
    while op.can_dispatch():
        op.dispatch()


def test_pool_map_capacity_is_one_more_than_its_actors_times_max_in_flight():
    op, pool, _ = _pool_op(max_in_flight=2)
    assert op.capacity == 4
    pool.size = 3
    assert op.capacity == 8
    _feed(op, *[Batch(epoch=1, ref=i, rows=1) for i in range(10)])
    assert (op.in_flight, len(op.queue), op.held) == (8, 2, 10)


def test_a_pool_handed_on_to_the_next_attempt_drops_its_calls_and_is_not_shut_down():
    op, pool, _ = _pool_op()
    _feed(op, Batch(epoch=1, ref="a", rows=1), Batch(epoch=1, ref="b", rows=1))
    pool.submitted[0].finish()
    pool.stats = SimpleNamespace(retries=2, deaths=1, ready=1)  # counted by this attempt

    assert op.hand_on() is pool
    assert [getattr(f, "cancelled", None) for f in pool.submitted] == [False, True]
    assert (op.in_flight, op.metrics.retries, op.metrics.actor_deaths) == (0, 2, 1)
    op.shutdown(wait=False)
    assert not pool.shut  # the next attempt's operator owns it now
    # ... which counts only what happens from then on.
    following = PoolMapOperator(_spec(), pool, OperatorHooks())
    following.metrics = op.metrics
    pool.stats = SimpleNamespace(retries=3, deaths=1, ready=1)
    following.shutdown(wait=False)
    assert pool.shut and (op.metrics.retries, op.metrics.actor_deaths) == (3, 1)


def test_a_broken_pool_is_not_handed_on():
    op, pool, _ = _pool_op()
    pool.reusable = False
    assert op.hand_on() is None
    op.shutdown(wait=False)
    assert pool.shut


def test_pool_map_outputs_leave_in_input_order():
    op, pool, _ = _pool_op()
    first, second = Batch(epoch=1, ref="a", rows=1), Batch(epoch=1, ref="b", rows=1)
    _feed(op, first, second)
    pool.submitted[1].finish()
    assert op.take_ready() == []  # the second waits for the first
    pool.submitted[0].finish()
    assert [f.batch for f in op.take_ready()] == [first, second]


def test_pool_map_wakes_the_loop_when_a_call_finishes():
    woken: list[Any] = []
    op = PoolMapOperator(_spec(), _Pool(), OperatorHooks(wake=woken.append))
    _feed(op, Batch(epoch=1, ref="a", rows=1))
    assert op.pool.submitted[0].callbacks == [woken.append]


def test_a_crash_without_retries_is_first_tried_again_alone_ahead_of_later_calls():
    op, pool, held = _pool_op(max_retries=0)
    crashed, later = Batch(epoch=1, ref="a", rows=4), Batch(epoch=1, ref="b", rows=1)
    _feed(op, crashed, later)
    pool.submitted[0].finish(RuntimeError("actor died"))
    pool.submitted[1].finish()
    assert op.take_ready() == []
    retry = pool.submitted[2]
    assert (retry.ref, retry.isolated, crashed.isolated) == ("a", True, True)
    assert held == []
    retry.finish()
    assert [f.batch for f in op.take_ready()] == [crashed, later]


def test_a_batch_that_keeps_crashing_is_retried_in_halves_first_in_line():
    op, pool, held = _pool_op(max_retries=2)
    crashed, later = Batch(epoch=3, ref="a", rows=5, priority=1), Batch(epoch=3, ref="b", rows=1)
    _feed(op, crashed, later)
    pool.submitted[0].finish(RuntimeError("actor died"))
    assert op.take_ready() == []
    assert held == [crashed]  # two halves replace one batch: one more hold
    halves = pool.submitted[2:]
    assert [(f.ref, f.isolated) for f in halves] == [("a[0:2]", True), ("a[2:5]", True)]
    for future in [*halves, pool.submitted[1]]:
        future.finish()
    done = op.take_ready()
    assert [(f.batch.ref, f.batch.rows, f.batch.epoch, f.batch.priority) for f in done] == [
        ("a[0:2]", 2, 3, 1),
        ("a[2:5]", 3, 3, 1),
        ("b", 1, 3, 0),
    ]


def test_a_single_row_that_keeps_crashing_is_handed_back_as_an_error():
    op, pool, _ = _pool_op(max_retries=1)
    lone = Batch(epoch=1, ref="a", rows=1)
    _feed(op, lone)
    error = RuntimeError("actor died")
    pool.submitted[0].finish(error)
    [finished] = op.take_ready()
    assert (finished.batch, finished.error, finished.outputs) == (lone, error, [])
    assert op.metrics.dead_letters == 1


def test_a_finished_call_hands_back_its_meta_and_output_ref():
    op, pool, _ = _pool_op()
    _feed(op, Batch(epoch=1, ref="a", rows=1))
    pool.submitted[0].finish()
    [finished] = op.take_ready()
    assert finished.outputs == [(_meta(1), "out:a")]
    assert finished.error is None


def test_an_operator_queues_higher_priorities_first():
    op, _, _ = _pool_op()
    for ref, priority in [("low", 0), ("high", 5)]:
        op.add_input(Batch(epoch=1, ref=ref, rows=1, priority=priority))
    assert [b.ref for b in op.queue] == ["high", "low"]


# -- the keyed operator -----------------------------------------------------------------------


def _actor(index: int, calls: list[str]) -> FakeActor:
    """A partition actor: process and snapshot return named refs."""

    def reply(actor: FakeActor, method: str, args: tuple[Any, ...]) -> Any:
        if method == "snapshot":
            return f"snap:{actor.index}:{actor.counts['snapshot']}"
        return f"meta:{actor.index}:{args[0]}", f"out:{actor.index}:{args[0]}"

    return FakeActor(index, calls, ("process", "snapshot"), reply)


def _keyed_op(partitions: int = 2):
    calls: list[str] = []
    snapshots: list[tuple[Any, ...]] = []
    done: set[str] = set()
    op = KeyedOperator(
        _spec("count", kind="keyed", key="k", partitions=partitions),
        [_actor(i, calls) for i in range(partitions)],
        OperatorHooks(snapshot=lambda *args: snapshots.append(args)),
        ready=lambda refs: all(r in done for r in refs),
        get=lambda refs: [_meta(1) for _ in refs],
    )
    return op, calls, snapshots, done


def test_keyed_capacity_is_two_calls_per_partition():
    op, _, _, _ = _keyed_op(partitions=3)
    assert op.capacity == 6
    assert op.participant == "stage:count"


def test_keyed_snapshots_of_earlier_epochs_go_before_a_later_epoch_rows():
    op, calls, snapshots, _ = _keyed_op()
    op.start(1)
    op.add_input(Batch(epoch=1, ref="a", rows=1))
    op.add_input(Batch(epoch=3, ref="b", rows=1))
    op.dispatch()
    op.dispatch()
    assert calls == [
        "0:process:a",
        "1:process:a",
        "0:snapshot",  # epoch 1, both partitions
        "1:snapshot",
        "0:snapshot",  # epoch 2
        "1:snapshot",
        "0:process:b",
        "1:process:b",
    ]
    assert [(s[1], s[2], s[3], s[4]) for s in snapshots] == [
        (1, "stage:count", 0, 2),
        (1, "stage:count", 1, 2),
        (2, "stage:count", 0, 2),
        (2, "stage:count", 1, 2),
    ]


def test_keyed_barrier_snapshots_each_epoch_once():
    op, _, snapshots, _ = _keyed_op(partitions=1)
    op.start(5)  # this run's first epoch: the ones before it are done
    op.on_barrier(5)
    op.on_barrier(5)
    op.add_input(Batch(epoch=6, ref="a", rows=1))
    op.dispatch()  # epoch 5 was snapshotted already
    assert [s[1] for s in snapshots] == [5]


def test_keyed_outputs_leave_in_input_order_once_every_partition_answered():
    op, _, _, done = _keyed_op()
    first, second = Batch(epoch=1, ref="a", rows=1), Batch(epoch=1, ref="b", rows=1)
    for batch in (first, second):
        op.add_input(batch)
        op.dispatch()
    assert op.wait_refs() == ["meta:0:a", "meta:1:a"]
    done.update({"meta:0:b", "meta:1:b", "meta:0:a"})
    assert op.take_ready() == []  # partition 1 has not answered for the first batch
    done.add("meta:1:a")
    finished = op.take_ready()
    assert [f.batch for f in finished] == [first, second]
    assert [ref for _, ref in finished[0].outputs] == ["out:0:a", "out:1:a"]
    assert op.wait_refs() == []


# -- the planner table ------------------------------------------------------------------------


def test_every_stage_kind_has_a_planner_and_only_keyed_stages_have_state():
    assert sorted(PLANNERS) == ["batches", "filter", "flat_map", "keyed", "map"]
    assert [kind for kind, p in PLANNERS.items() if p.restore is not None] == ["keyed"]


def test_an_unknown_stage_kind_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown kind 'shuffle'; known: \['batches'"):
        planner_for(_spec(kind="shuffle"))


def _plan(*stages: StageSpec) -> Plan:
    return Plan(source=TestSource([]), stages=stages)


def test_stateful_stages_are_named_as_checkpoint_participants():
    plan = _plan(_spec("m"), _spec("count", kind="keyed", key="k", partitions=2))
    assert list(stateful_stages(plan)) == ["stage:count"]


def test_restored_keyed_state_must_have_the_stage_partition_count():
    plan = _plan(_spec("count", kind="keyed", key="k", partitions=2))
    states = {"stage:count": pickle.dumps([b"p0", None])}
    assert restore_states(plan, states, "job") == {"count": [b"p0", None]}
    with pytest.raises(JobAbortedError, match="partitions are fixed"):
        restore_states(plan, {"stage:count": pickle.dumps([None])}, "job")


def test_a_keyed_stage_never_lets_a_later_epoch_overtake_an_earlier_one():
    # Priorities reorder queues; for a keyed stage that would put an earlier epoch's rows
    # after the later epoch's snapshot of it (and lose them on a restore).
    op, _, _, _ = _keyed_op()
    op.start(1)
    op.add_input(Batch(epoch=1, ref="old-low", rows=1, priority=0))
    op.add_input(Batch(epoch=2, ref="new-urgent", rows=1, priority=9))
    op.add_input(Batch(epoch=2, ref="new-low", rows=1, priority=0))
    op.add_input(Batch(epoch=2, ref="new-urgent-2", rows=1, priority=9))
    op.add_input(Batch(epoch=1, ref="old-late", rows=1, priority=0))  # a straggler
    assert [b.ref for b in op.queue] == [
        "old-low",
        "old-late",
        "new-urgent",
        "new-urgent-2",
        "new-low",
    ]
