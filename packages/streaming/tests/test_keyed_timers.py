"""Keyed timers and the end-of-input hook without Ray: the partition actor's logic with a
fake clock, and the keyed operator's calls with fake actors (see test_operators.py)."""

from __future__ import annotations

import pickle
from typing import Any

import pyarrow as pa
import pytest
from _fake_actors import FakeActor

from tideflow.core.testing import FakeClock
from tideflow.streaming import Pipeline
from tideflow.streaming._execution.state import Batch
from tideflow.streaming._keyed import KeyedWorker
from tideflow.streaming._operators.base import OperatorHooks
from tideflow.streaming._operators.keyed import KeyedOperator
from tideflow.streaming._plan import StageSpec
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import TestSource

# -- the partition actor ----------------------------------------------------------------------


def gather(state: list[int] | None, row: dict[str, Any]) -> tuple[Any, Any]:
    """Groups of three ids per key: emitted when complete, kept until then."""
    ids = [*(state or []), row["id"]]
    if len(ids) == 3:
        return None, {"k": row["k"], "ids": ids, "complete": True}
    return ids, None


def flush(key: Any, state: list[int]) -> tuple[Any, Any]:
    return None, {"k": key, "ids": state, "complete": False}


def emit_rest(key: Any, state: list[int]) -> dict[str, Any]:
    return {"k": key, "ids": state, "complete": False}


def _spec(**hooks: Any) -> StageSpec:
    return StageSpec(name="gather", udf=gather, kind="keyed", key="k", **hooks)


def _rows(*pairs: tuple[str, int]) -> pa.Table:
    return pa.table({"k": [k for k, _ in pairs], "id": [i for _, i in pairs]})


def _out(answer: tuple[dict[str, Any], tuple[pa.Table, Any]]) -> list[dict[str, Any]]:
    return answer[1][0].to_pylist()


def test_each_row_of_a_key_arms_its_timer_and_a_later_row_moves_it():
    clock = FakeClock(100.0)
    worker = KeyedWorker(_spec(on_timer=flush, timer_s=5.0), "k", None, clock=clock)
    meta, _ = worker.process(_rows(("a", 1)))
    assert meta["next_due"] == 105.0
    clock.advance(3.0)
    meta, _ = worker.process(_rows(("a", 2)))
    assert meta["next_due"] == 108.0
    assert _out(worker.fire_timers(107.9)) == []
    meta, (rows, dead) = worker.fire_timers(108.0)
    assert rows.to_pylist() == [{"k": "a", "ids": [1, 2], "complete": False}]
    assert (meta["rows_out"], meta["next_due"], dead, worker.keys()) == (1, None, None, 0)


def test_a_key_forgotten_by_its_row_has_no_timer_left():
    worker = KeyedWorker(_spec(on_timer=flush, timer_s=5.0), "k", None, clock=FakeClock())
    meta, _ = worker.process(_rows(("a", 1), ("b", 1), ("a", 2), ("a", 3)))
    assert meta["next_due"] == 5.0  # b's; a is complete and forgotten
    assert _out(worker.fire_timers(10.0)) == [{"k": "b", "ids": [1], "complete": False}]


def test_a_timer_fires_once_and_the_key_it_keeps_waits_for_its_next_row():
    def keep(key: Any, state: list[int]) -> tuple[Any, Any]:
        return state, {"k": key, "partial": state}

    clock = FakeClock()
    worker = KeyedWorker(_spec(on_timer=keep, timer_s=1.0), "k", None, clock=clock)
    worker.process(_rows(("a", 1)))
    assert _out(worker.fire_timers(1.0)) == [{"k": "a", "partial": [1]}]
    meta, (rows, _) = worker.fire_timers(50.0)
    assert (rows.num_rows, meta["next_due"], worker.keys()) == (0, None, 1)
    clock.set(60.0)
    meta, _ = worker.process(_rows(("a", 2)))
    assert meta["next_due"] == 61.0


def test_timers_are_part_of_the_snapshot():
    spec = _spec(on_timer=flush, timer_s=5.0)
    worker = KeyedWorker(spec, "k", None, clock=FakeClock())
    worker.process(_rows(("a", 1), ("b", 7)))
    restored = KeyedWorker(spec, "k", worker.snapshot(), clock=FakeClock(1000.0))
    meta, (rows, _) = restored.fire_timers(1000.0)  # fell due while the job was down
    assert rows.to_pylist() == [
        {"k": "a", "ids": [1], "complete": False},
        {"k": "b", "ids": [7], "complete": False},
    ]
    assert meta["next_due"] is None


def test_a_snapshot_from_before_timers_restores_its_states():
    old = pickle.dumps({"a": [1, 2]})  # the format of checkpoints without timers
    worker = KeyedWorker(_spec(), "k", old)
    assert _out(worker.process(_rows(("a", 3)))) == [{"k": "a", "ids": [1, 2, 3], "complete": True}]


def test_end_emits_every_key_left_in_order_then_forgets_them_all():
    spec = _spec(on_timer=flush, timer_s=5.0, on_end=emit_rest)
    worker = KeyedWorker(spec, "k", None, clock=FakeClock())
    worker.process(_rows(("b", 1), ("a", 2), ("b", 3)))
    meta, (rows, _) = worker.end()
    assert rows.to_pylist() == [
        {"k": "b", "ids": [1, 3], "complete": False},
        {"k": "a", "ids": [2], "complete": False},
    ]
    assert (meta["rows_in"], meta["next_due"], worker.keys()) == (0, None, 0)
    assert _out(worker.end()) == []  # a finished job run again emits nothing
    assert _out(KeyedWorker(spec, "k", worker.snapshot()).end()) == []


def test_a_raising_on_timer_or_on_end_dead_letters_the_key():
    def broken(key: Any, state: Any) -> Any:
        raise ValueError(f"cannot flush {key}")

    spec = _spec(on_timer=broken, timer_s=1.0, on_end=broken)
    worker = KeyedWorker(spec, "k", None, clock=FakeClock())
    worker.process(_rows(("a", 1)))
    meta, (rows, dead) = worker.fire_timers(1.0)
    assert (rows.num_rows, meta["dead"], meta["next_due"], worker.keys()) == (0, 1, None, 1)
    assert dead.column("error").to_pylist() == ["ValueError: cannot flush a"]
    _, (_, dead) = worker.end()
    assert dead.column("record").to_pylist() == ['{"k": "a", "end_of_input": true}']
    assert worker.keys() == 0


# -- the keyed operator -----------------------------------------------------------------------


def _actor(index: int, calls: list[str]) -> FakeActor:
    """A partition actor whose calls return refs named after the call."""

    def reply(actor: FakeActor, method: str, args: tuple[Any, ...]) -> Any:
        name = f"{actor.index}:{method}" + "".join(f":{a}" for a in args)
        return name if method == "snapshot" else (f"meta:{name}", f"out:{name}")

    return FakeActor(index, calls, ("process", "fire_timers", "end", "snapshot"), reply)


class _Keyed:
    """A keyed operator on fake actors; ``metas[ref]`` is what a finished call answers."""

    def __init__(self, partitions: int = 2, **hooks: Any) -> None:
        self.calls: list[str] = []
        self.held: list[Batch] = []
        self.snapshots: list[int] = []
        self.metas: dict[str, dict[str, Any]] = {}
        spec = StageSpec(
            name="gather", udf=gather, kind="keyed", key="k", partitions=partitions, **hooks
        )
        self.op = KeyedOperator(
            spec,
            [_actor(i, self.calls) for i in range(partitions)],
            OperatorHooks(
                hold=self.held.append, snapshot=lambda _r, e, *_: self.snapshots.append(e)
            ),
            ready=lambda refs: all(r in self.metas for r in refs),
            get=lambda refs: [self.metas[r] for r in refs],
        )

    def answer(self, call: str, next_due: float | None = None) -> None:
        meta = {"rows_in": 0, "rows_out": 0, "dead": 0, "start": 0.0, "end": 0.0}
        self.metas[f"meta:{call}"] = {**meta, "next_due": next_due}

    def feed(self, *batches: Batch) -> None:
        for batch in batches:
            self.op.add_input(batch)
        while self.op.can_dispatch():
            self.op.dispatch()


def test_timers_are_fired_on_the_partitions_that_are_due_once_until_they_answer():
    k = _Keyed(on_timer=flush, timer_s=5.0)
    k.op.start(1)
    k.feed(Batch(epoch=1, ref="a", rows=1))
    k.answer("0:process:a", next_due=10.0)
    k.answer("1:process:a", next_due=None)
    k.op.take_ready()
    k.op.on_tick(9.0, 1)
    assert k.calls == ["0:process:a", "1:process:a"]  # not due yet
    k.op.on_tick(10.0, 1)
    k.op.on_tick(11.0, 1)  # partition 0 has a call of timers in flight
    assert k.calls[2:] == ["0:fire_timers:10.0"]
    k.answer("0:fire_timers:10.0", next_due=12.0)
    [finished] = k.op.take_ready()
    assert (finished.batch.rows, finished.batch.epoch) == (0, 1)
    assert finished.outputs == [(k.metas["meta:0:fire_timers:10.0"], "out:0:fire_timers:10.0")]
    k.op.on_tick(12.0, 1)
    assert k.calls[3:] == ["0:fire_timers:12.0"]


def test_every_partition_is_asked_for_its_timers_at_the_start_as_restored_ones_may_be_due():
    k = _Keyed(on_timer=flush, timer_s=5.0)
    k.op.start(3)
    k.op.on_tick(100.0, 3)
    k.op.on_tick(101.0, 3)
    assert k.calls == ["0:fire_timers:100.0", "1:fire_timers:100.0"]
    assert [b.epoch for b in k.held] == [3]
    k.answer("0:fire_timers:100.0")
    k.answer("1:fire_timers:100.0")
    k.op.take_ready()
    k.op.on_tick(1000.0, 3)  # neither has a timer
    assert len(k.calls) == 2


def test_a_call_of_timers_holds_its_epoch_and_leaves_in_input_order():
    k = _Keyed(partitions=1, on_timer=flush, timer_s=5.0)
    k.op.start(1)
    k.feed(Batch(epoch=1, ref="a", rows=1))
    k.answer("0:process:a", next_due=3.0)
    k.op.take_ready()
    k.feed(Batch(epoch=1, ref="b", rows=1))
    k.op.on_tick(3.0, 1)
    assert k.calls == ["0:process:a", "0:process:b", "0:fire_timers:3.0"]
    assert [(b.epoch, b.rows) for b in k.held] == [(1, 0)]
    k.answer("0:fire_timers:3.0")
    assert k.op.take_ready() == []  # b first
    k.answer("0:process:b")
    assert [f.batch.ref for f in k.op.take_ready()] == ["b", None]


def test_timers_fire_in_the_epoch_of_the_rows_sent_last_or_the_next_once_it_is_snapshotted():
    k = _Keyed(partitions=1, on_timer=flush, timer_s=5.0)
    k.op.start(1)
    k.feed(Batch(epoch=2, ref="a", rows=1))  # epoch 1 passed without rows
    k.answer("0:process:a", next_due=1.0)
    k.op.take_ready()
    k.op.on_tick(1.0, 3)  # epoch 3 is being read; epoch 2's rows may still come
    k.answer("0:fire_timers:1.0", next_due=2.0)
    k.op.take_ready()
    k.op.on_barrier(2)
    k.op.on_tick(2.0, 3)
    assert k.calls == [
        "0:snapshot",  # epoch 1, before epoch 2's rows
        "0:process:a",
        "0:fire_timers:1.0",
        "0:snapshot",  # epoch 2
        "0:fire_timers:2.0",
    ]
    assert [b.epoch for b in k.held] == [2, 3]
    assert k.snapshots == [1, 2]


def test_timers_wait_when_every_epoch_up_to_the_one_being_read_is_snapshotted():
    k = _Keyed(partitions=1, on_timer=flush, timer_s=5.0)
    k.op.start(1)
    k.feed(Batch(epoch=1, ref="a", rows=1))
    k.answer("0:process:a", next_due=1.0)
    k.op.take_ready()
    k.op.on_barrier(1)  # a stopped job's last epoch
    k.op.on_tick(5.0, 1)
    assert k.calls == ["0:process:a", "0:snapshot"]
    assert k.held == []


def test_the_end_goes_to_every_partition_once_after_the_queued_batches():
    k = _Keyed(on_end=emit_rest)
    k.op.start(1)
    k.op.add_input(Batch(epoch=4, ref="a", rows=1))
    k.op.on_tick(0.0, 4, input_done=True)
    assert k.calls == []  # a batch still waits to be sent
    k.feed()
    k.op.on_tick(0.0, 4, input_done=True)
    k.op.on_tick(0.0, 4, input_done=True)
    assert k.calls == [
        *["0:snapshot", "1:snapshot"] * 3,  # epochs 1 to 3, before epoch 4's rows
        "0:process:a",
        "1:process:a",
        "0:end",
        "1:end",
    ]
    assert [(b.epoch, b.rows) for b in k.held] == [(4, 0)]
    for call in ("0:process:a", "1:process:a", "0:end", "1:end"):
        k.answer(call)
    assert [f.batch.ref for f in k.op.take_ready()] == ["a", None]


def test_timers_stop_once_the_input_is_done():
    k = _Keyed(partitions=1, on_timer=flush, timer_s=5.0)
    k.op.start(1)
    k.feed(Batch(epoch=1, ref="a", rows=1))
    k.answer("0:process:a", next_due=1.0)
    k.op.take_ready()
    k.op.on_tick(5.0, 1, input_done=True)
    k.op.on_tick(6.0, 1)
    assert k.calls == ["0:process:a"]


def test_no_end_call_without_on_end_or_before_the_input_is_done():
    without = _Keyed(partitions=1)
    without.op.start(1)
    without.op.on_tick(0.0, 1, input_done=True)
    with_end = _Keyed(partitions=1, on_end=emit_rest)
    with_end.op.start(1)
    with_end.op.on_tick(0.0, 1, input_done=False)  # a stop, or rows still upstream
    assert without.calls == with_end.calls == []


# -- the API ----------------------------------------------------------------------------------


def test_stateful_map_puts_its_hooks_on_the_keyed_stage():
    pipe = Pipeline.read(TestSource([])).stateful_map(
        "k", gather, on_timer=flush, timer_s=2.5, on_end=emit_rest, partitions=2
    )
    [spec] = pipe.plan.stages
    assert (spec.kind, spec.key, spec.partitions) == ("keyed", "k", 2)
    assert (spec.on_timer, spec.timer_s, spec.on_end) == (flush, 2.5, emit_rest)


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ({"on_timer": flush}, "on_timer and timer_s come together"),
        ({"timer_s": 1.0}, "on_timer and timer_s come together"),
        ({"on_timer": flush, "timer_s": 0}, "timer_s must be a number > 0"),
        ({"on_end": "flush"}, "on_end must be a function"),
    ],
)
def test_keyed_hooks_are_checked(hooks: dict[str, Any], message: str):
    with pytest.raises(ConfigError, match=message):
        _spec(**hooks)


def test_timers_and_end_hooks_are_for_keyed_stages_only():
    with pytest.raises(ConfigError, match="for keyed stages only"):
        StageSpec(name="m", udf=gather, kind="map", on_end=emit_rest)
