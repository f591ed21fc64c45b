"""The executor's scheduling steps, backpressure policy and commit modes, without Ray and
without sleeping: each step is a plain function over the loop's state."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import pytest

from tideflow.core.checkpoint import EpochCoordinator
from tideflow.core.testing import FakeClock
from tideflow.streaming._acks import AckLedger, Origin
from tideflow.streaming._execution import steps
from tideflow.streaming._execution.backpressure import QueueLimits
from tideflow.streaming._execution.commit_modes import (
    AckCommit,
    BarrierStep,
    CommitContext,
    CommitMode,
    EpochCommit,
    commit_mode,
)
from tideflow.streaming._execution.committer import Committer, Completions, PositionCommitter
from tideflow.streaming._execution.state import Batch, LoopState, SplitState
from tideflow.streaming._metrics import JobResult
from tideflow.streaming._plan import StageSpec
from tideflow.streaming.connectors._base import JobContext, Split
from tideflow.streaming.errors import JobAbortedError


def _batch(epoch: int = 1, *, priority: int = 0, name: str = "", origin: Origin | None = None):
    return Batch(epoch=epoch, ref=name, rows=1, priority=priority, origin=origin)


def _split(key: str, **fields: Any) -> SplitState:
    return SplitState(split=Split(split_id=key), **fields)


def _spec(name: str = "s", **fields: Any) -> StageSpec:
    return StageSpec(name=name, udf=lambda table: table, **fields)


# -- priority enqueue --------------------------------------------------------------------


def test_enqueue_puts_a_batch_ahead_of_lower_priorities_and_behind_its_own():
    queue: deque[Batch] = deque()
    for name, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", 9), ("f", 1)]:
        steps.enqueue(queue, _batch(priority=priority, name=name))
    assert [b.ref for b in queue] == ["e", "b", "d", "f", "a", "c"]


# -- the queue limit and the default backpressure policy ------------------------------------


def test_queue_limit_is_twice_max_actors_times_max_in_flight_at_least_four():
    assert steps.queue_limit(_spec(max_actors=3, max_in_flight=2)) == 12
    assert steps.queue_limit(_spec(max_actors=1, max_in_flight=1)) == 4


def test_queue_limit_before_the_sink_is_eight_and_a_configured_limit_wins():
    assert steps.queue_limit(None) == 8
    assert steps.queue_limit(None, 3) == 3
    assert steps.queue_limit(_spec(max_actors=4), 2) == 2


def test_queue_limits_budget_is_the_room_left_before_the_downstream_queue():
    policy = QueueLimits()
    slow = _spec("slow", max_actors=1, max_in_flight=2)  # limit 4
    assert policy.budget(slow, waiting=1, sent=1) == 2
    assert policy.budget(slow, waiting=3, sent=1) == 0
    assert policy.budget(slow, waiting=5, sent=3) == 0  # never negative


def test_queue_limits_say_which_queue_is_full():
    policy = QueueLimits(queue_limit=1)
    assert policy.reason(_spec("slow")) == "queue of 'slow' full"
    assert policy.reason(None) == "sink busy"
    assert policy.budget(None, waiting=1, sent=0) == 0


# -- epochs ---------------------------------------------------------------------------------


def test_an_epoch_is_due_when_its_interval_passed():
    clock = FakeClock()
    started = clock.now()
    clock.advance(2.9)
    due = {"interval_s": 3.0, "epoch_reads": 0, "epoch_cap": None}
    assert not steps.epoch_due(age_s=clock.now() - started, **due)
    clock.advance(0.1)
    assert steps.epoch_due(age_s=clock.now() - started, **due)


def test_an_epoch_is_due_when_its_reads_reach_the_cap():
    assert not steps.epoch_due(age_s=0.0, interval_s=None, epoch_reads=2, epoch_cap=3)
    assert steps.epoch_due(age_s=0.0, interval_s=None, epoch_reads=3, epoch_cap=3)
    assert not steps.epoch_due(age_s=1e9, interval_s=None, epoch_reads=10**9, epoch_cap=None)


# -- which reads to issue --------------------------------------------------------------------


def test_reads_fill_each_split_up_to_the_read_ahead_within_the_budget():
    a, b = _split("a"), _split("b")
    planned = steps.plan_reads([a, b], budget=6, now=0.0, epoch_reads=0, epoch_cap=None)
    assert [s.split.split_id for s in planned] == ["a"] * steps.READ_AHEAD + ["b", "b"]


def test_reads_count_those_already_in_flight_against_the_read_ahead():
    a = _split("a", reading=deque([("m", "t", 1)] * 3))
    planned = steps.plan_reads([a], budget=10, now=0.0, epoch_reads=0, epoch_cap=None)
    assert len(planned) == steps.READ_AHEAD - 3


def test_no_reads_without_budget_and_none_of_finished_splits():
    a, b = _split("a"), _split("b", finished=True)
    assert steps.plan_reads([a], budget=0, now=0.0, epoch_reads=0, epoch_cap=None) == []
    assert steps.plan_reads([b], budget=5, now=0.0, epoch_reads=0, epoch_cap=None) == []


def test_reads_stop_at_the_epoch_cap():
    a, b = _split("a"), _split("b")
    planned = steps.plan_reads([a, b], budget=10, now=0.0, epoch_reads=3, epoch_cap=5)
    assert [s.split.split_id for s in planned] == ["a", "a"]


def test_an_empty_read_backs_its_split_off_and_does_not_fill_the_epoch():
    clock = FakeClock(10.0)
    state = LoopState(epoch=4, epoch_reads=2)
    a = _split("a")
    steps.note_empty_read(state, a, epoch=4, now=clock.now())
    assert state.epoch_reads == 1
    assert steps.plan_reads([a], budget=5, now=clock.now(), epoch_reads=0, epoch_cap=None) == []
    clock.advance(steps.IDLE_BACKOFF_S)
    assert len(steps.plan_reads([a], budget=5, now=clock.now(), epoch_reads=0, epoch_cap=None))


def test_an_empty_read_of_an_earlier_epoch_or_a_finished_split_changes_no_count():
    state = LoopState(epoch=4, epoch_reads=2)
    done = _split("a", finished=True)
    steps.note_empty_read(state, done, epoch=3, now=10.0)
    assert state.epoch_reads == 2
    assert done.idle_until == 0.0


# -- holds and which epochs can pre-commit --------------------------------------------------


def test_an_origin_is_returned_when_its_last_hold_is_released():
    state = LoopState()
    origin = Origin(split_id="a", start=0, end=10)
    first, second = _batch(1, origin=origin), _batch(1, origin=origin)
    steps.hold(state, first)
    steps.hold(state, second)
    assert state.pending == {1: 2}
    assert steps.release(state, first) is None
    assert steps.release(state, second) is origin
    assert state.pending == {}


def test_epochs_pre_commit_in_order_once_their_barrier_is_recorded_and_nothing_holds_them():
    state = LoopState(barriers=deque([1, 2, 3]))
    held = _batch(2)
    steps.hold(state, held)
    assert steps.epochs_to_precommit(state) == [1]  # 2 is held, so 3 waits for it
    steps.release(state, held)
    assert steps.epochs_to_precommit(state) == [2, 3]
    assert not state.barriers


def test_an_epoch_without_a_barrier_does_not_pre_commit():
    state = LoopState()
    steps.hold(state, held := _batch(1))
    steps.release(state, held)
    assert steps.epochs_to_precommit(state) == []


def test_the_source_state_at_a_barrier_is_each_split_position_and_the_finished_ones():
    splits = {"a": _split("a", state={"row": 3}), "b": _split("b", finished=True), "c": _split("c")}
    assert steps.source_state(splits) == {"positions": {"a": {"row": 3}}, "finished": ["b"]}


# -- commit modes ---------------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.commits: list[tuple[int, list[Any]]] = []

    def commit(self, ctx: JobContext, epoch: int, states: list[Any]) -> None:
        self.commits.append((epoch, states))


class _Source:
    def position_after(self, split: Split, offset: int) -> Any:
        return {"next": offset + 1}


def _context(calls: list[list[Any]], positions: list[Any]) -> CommitContext:
    coordinator = EpochCoordinator(store=None, clock=FakeClock())
    result = JobResult(job_id="j")
    job = JobContext(job_id="j", run=1, job_uri="memory://j")
    return CommitContext(
        coordinator=coordinator,
        ack=coordinator.ack,
        sink=_Sink(),
        dead_sink=_Sink(),
        job=lambda: job,
        result=lambda: result,
        ledger=AckLedger(_Source()),
        completions=Completions(calls.append, every=2),
        commit_positions=positions.append,
    )


def _mode(cls: type[CommitMode]) -> CommitMode:
    return cls(_context([], []))


@pytest.mark.parametrize(
    ("wanted", "ending", "reading", "step"),
    [
        (False, False, False, BarrierStep.NONE),
        (True, False, True, BarrierStep.NONE),  # the epoch's reads must return first
        (True, False, False, BarrierStep.NEXT),
        (False, True, True, BarrierStep.NONE),
        (False, True, False, BarrierStep.LAST),
        (True, True, False, BarrierStep.LAST),
    ],
)
def test_epoch_mode_takes_a_barrier_once_the_epoch_reads_returned(wanted, ending, reading, step):
    mode = _mode(EpochCommit)
    got = mode.barrier_step(wanted=wanted, ending=ending, reading=reading, unacknowledged=5)
    assert got is step


@pytest.mark.parametrize(
    ("wanted", "ending", "reading", "unacknowledged", "step"),
    [
        (False, False, False, 0, BarrierStep.NONE),
        (True, False, True, 3, BarrierStep.NEXT),  # no alignment: the prefix as it is
        (False, True, False, 1, BarrierStep.NONE),  # the end waits for every ack
        (True, True, True, 0, BarrierStep.NEXT),
        (False, True, False, 0, BarrierStep.LAST),
    ],
)
def test_ack_mode_checkpoints_as_is_and_ends_once_everything_is_acknowledged(
    wanted, ending, reading, unacknowledged, step
):
    mode = _mode(AckCommit)
    got = mode.barrier_step(
        wanted=wanted, ending=ending, reading=reading, unacknowledged=unacknowledged
    )
    assert got is step


def test_epoch_mode_records_positions_at_the_barrier_and_queues_the_epoch():
    mode = _mode(EpochCommit)
    mode.ctx.coordinator.register("source")
    epoch = int(mode.ctx.coordinator.begin_epoch())
    state = LoopState(splits={"a": _split("a", state=7)})
    mode.barrier(state, epoch)
    assert list(state.barriers) == [epoch]
    assert int(mode.ctx.coordinator.last_completed or 0) == epoch  # the only participant


def test_epoch_mode_commits_sinks_then_reports_ids_then_positions():
    calls: list[list[Any]] = []
    positions: list[Any] = []
    mode = EpochCommit(_context(calls, positions))
    states = {
        "source": {"positions": {"a": 9}},
        "sink": {"precommits": [{"state": "s0", "ids": [1, 2, 3]}]},
        "dead_letter": {"precommits": [{"state": "d0", "ids": []}]},
    }
    mode.commit(4, states)
    assert mode.ctx.sink.commits == [(4, ["s0"])]
    assert mode.ctx.dead_sink.commits == [(4, ["d0"])]
    assert mode.ctx.result().committed_epochs == [4]
    assert calls == [[1, 2], [3]]  # in lists of at most complete_every
    assert positions == [{"a": 9}]


def test_ack_mode_flushes_written_ids_before_checkpointing_the_acknowledged_prefix():
    calls: list[list[Any]] = []
    mode = AckCommit(_context(calls, []))
    coordinator, ledger = mode.ctx.coordinator, mode.ctx.ledger
    coordinator.register("source")
    ledger.open(Split(split_id="a"), None)
    origin = ledger.track("a", (0, 4))
    assert origin is not None
    ledger.ack(origin)
    mode.ctx.completions.add(["x"])
    epoch = int(coordinator.begin_epoch())
    mode.barrier(LoopState(splits={"a": _split("a", finished=True)}), epoch)
    assert calls == [["x"]]
    assert int(coordinator.last_completed or 0) == epoch


def test_ack_mode_commits_only_positions():
    positions: list[Any] = []
    mode = AckCommit(_context([], positions))
    mode.commit(2, {"source": {"positions": {"a": {"next": 5}}}})
    assert positions == [{"a": {"next": 5}}]
    assert mode.ctx.result().committed_epochs == [2]
    assert mode.ctx.sink.commits == []


def test_ack_mode_sinks_recover_everything_and_epoch_mode_after_the_checkpoint():
    assert _mode(AckCommit).recover_after(7) is None
    assert _mode(EpochCommit).recover_after(7) == 7
    assert _mode(AckCommit).participants == ("source",)
    assert _mode(EpochCommit).participants == ("source", "sink", "dead_letter")


def test_an_unknown_commit_mode_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"\['ack', 'epoch'\]"):
        commit_mode("twice", _context([], []))


# -- completion callbacks and source positions ---------------------------------------------


def test_completions_report_kept_ids_once_enough_are_kept():
    calls: list[list[Any]] = []
    completions = Completions(calls.append, every=3)
    completions.add([1, 2])
    completions.flush_if_full()
    assert calls == []
    completions.add([3, 4])
    completions.flush_if_full()
    assert calls == [[1, 2, 3], [4]]
    assert completions.buffered == 0


def test_a_raising_callback_stops_the_job_with_an_error_naming_the_callback():
    def alert(rows: list[Any]) -> None:
        raise RuntimeError("alert service down")

    completions = Completions(alert, every=3, name="on_dead_letter")

    with pytest.raises(JobAbortedError) as stopped:
        completions.notify([{"stage": "parse"}])

    assert str(stopped.value).startswith(
        "the on_dead_letter callback raised RuntimeError: alert service down"
    )
    assert isinstance(stopped.value.__cause__, RuntimeError)


def test_position_commits_run_off_the_loop_and_the_last_one_wins():
    committed: list[Any] = []
    committer = PositionCommitter(committed.append)
    committer.submit({"a": 1})
    committer.submit({"a": 2})
    assert committer.wait_idle(timeout=10.0)
    assert committed[-1] == {"a": 2}


# -- the committer thread -------------------------------------------------------------------


def test_the_committer_runs_work_in_order_while_the_submitter_goes_on():
    release = threading.Event()
    done: list[int] = []
    committer = Committer(on_error=pytest.fail)
    committer.submit(lambda: release.wait(10.0) and None)  # a slow commit
    for epoch in (1, 2, 3):
        committer.submit(lambda epoch=epoch: done.append(epoch))
    assert committer.queued == 4  # submit() returned at once
    assert not committer.wait_idle(timeout=0)
    release.set()
    assert committer.wait_idle(timeout=10.0)
    assert done == [1, 2, 3]
    committer.shutdown(wait=True, timeout=10.0)


def test_the_committer_reports_the_first_failure_and_drops_the_work_after_it():
    errors: list[BaseException] = []
    done: list[str] = []
    committer = Committer(on_error=errors.append)
    boom = OSError("disk full")

    def fail() -> None:
        raise boom

    committer.submit(fail)
    committer.submit(lambda: done.append("later"))
    assert committer.wait_idle(timeout=10.0)
    assert errors == [boom]
    assert done == []  # nothing commits past a failure
    committer.shutdown(wait=True, timeout=10.0)


def test_a_committer_shut_down_on_an_error_drops_the_work_queued():
    release = threading.Event()
    done: list[str] = []
    committer = Committer(on_error=pytest.fail)
    committer.submit(lambda: release.wait(10.0) and None)  # may be running already
    committer.submit(lambda: done.append("queued"))
    committer.shutdown(wait=False, timeout=0)  # returns at once
    release.set()
    assert committer.wait_idle(timeout=10.0)
    assert done == []


def test_a_state_in_parts_is_acknowledged_once_every_part_came_in_part_order():
    parts: dict[tuple[int, str], dict[int, Any]] = {}
    key = (3, "stage:count")
    assert steps.gather_part(parts, key, 1, 2, b"p1") is None
    assert steps.gather_part(parts, key, 0, 2, b"p0") == [b"p0", b"p1"]
    assert parts == {}


def test_the_interval_closes_no_epoch_while_too_many_wait_for_their_commit():
    due = {"age_s": 5.0, "interval_s": 1.0, "epoch_reads": 0, "epoch_cap": None}
    assert steps.epoch_due(**due, uncommitted=steps.MAX_UNCOMMITTED_EPOCHS - 1)
    assert not steps.epoch_due(**due, uncommitted=steps.MAX_UNCOMMITTED_EPOCHS)
    # The cap on reads still closes it: max_batches bounds what an epoch holds.
    capped = {**due, "epoch_reads": 3, "epoch_cap": 3}
    assert steps.epoch_due(**capped, uncommitted=steps.MAX_UNCOMMITTED_EPOCHS)
