"""Which splits the executor reads, and when: fair turns, split priorities and the readers'
``next_awake``, as plain steps (no Ray, no sleeping: times come from a fake clock)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pytest

from tideflow.core.testing import FakeClock
from tideflow.streaming._execution import steps
from tideflow.streaming._execution.state import LoopState, SplitState
from tideflow.streaming._worker import ReaderWorker
from tideflow.streaming.connectors._base import JobContext, Split, SplitReader
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import TestSource


def _split(key: str, priority: int = 0, **fields: Any) -> SplitState:
    return SplitState(split=Split(split_id=key, priority=priority), **fields)


def _ids(planned: list[SplitState]) -> list[str]:
    return [s.split.split_id for s in planned]


def _plan(splits: list[SplitState], budget: int, now: float = 0.0) -> list[str]:
    """One call of the step, its reads returned at once (as when each finished in time)."""
    return _ids(steps.plan_reads(splits, budget=budget, now=now, epoch_reads=0, epoch_cap=None))


# -- fair turns ------------------------------------------------------------------------------


def test_each_split_gets_its_turn_when_the_budget_is_smaller_than_the_splits():
    splits = [_split(key) for key in "abcde"]
    served = Counter(key for _ in range(10) for key in _plan(splits, budget=2))
    assert served == dict.fromkeys("abcde", 4)  # 10 calls × 2 reads, shared evenly


def test_the_first_split_of_a_call_rotates_between_calls():
    splits = [_split(key) for key in "abc"]
    assert [_plan(splits, budget=1) for _ in range(6)] == [["a"], ["b"], ["c"]] * 2


def test_a_split_skipped_while_its_read_ahead_was_full_keeps_its_turn():
    a, b, c = _split("a"), _split("b"), _split("c")
    a.reading.extend([("m", "t", 1)] * steps.READ_AHEAD)
    assert [_plan([a, b, c], budget=1) for _ in range(2)] == [["b"], ["c"]]
    a.reading.clear()
    assert _plan([a, b, c], budget=1) == ["a"]  # served longest ago (never)


def test_a_waiting_split_is_skipped_and_keeps_its_turn():
    a, b, c = _split("a", idle_until=5.0), _split("b"), _split("c")
    assert _plan([a, b, c], budget=1, now=1.0) == ["b"]
    assert _plan([a, b, c], budget=1, now=2.0) == ["c"]
    assert _plan([a, b, c], budget=1, now=5.0) == ["a"]


# -- priorities ------------------------------------------------------------------------------


def test_a_higher_priority_split_is_read_first_when_the_budget_is_short():
    backlog, alerts = _split("backlog"), _split("alerts", priority=10)
    assert [_plan([backlog, alerts], budget=2) for _ in range(3)] == [["alerts"] * 2] * 3


def test_lower_priorities_are_read_with_the_budget_the_higher_ones_leave():
    low, high = _split("low"), _split("high", priority=1)
    planned = _plan([low, high], budget=steps.READ_AHEAD + 2)
    assert planned == ["high"] * steps.READ_AHEAD + ["low"] * 2


def test_a_lower_priority_is_read_while_the_higher_one_waits_for_data():
    low, high = _split("low"), _split("high", priority=5, idle_until=1.0)
    assert _plan([low, high], budget=1, now=0.0) == ["low"]
    assert _plan([low, high], budget=1, now=1.0) == ["high"]


def test_splits_of_one_priority_take_turns_ahead_of_lower_ones():
    splits = [_split("low"), _split("h1", priority=3), _split("h2", priority=3)]
    assert [_plan(splits, budget=1) for _ in range(4)] == [["h1"], ["h2"]] * 2


def test_a_split_priority_must_be_an_int():
    with pytest.raises(ConfigError, match=r"Split 'a': priority must be an int; got '1'"):
        Split(split_id="a", priority="1")  # type: ignore[arg-type]


# -- next_awake ------------------------------------------------------------------------------


def test_an_empty_read_waits_as_long_as_its_reader_asked_instead_of_the_idle_back_off():
    clock = FakeClock(10.0)
    state, a = LoopState(epoch=1, epoch_reads=1), _split("a")
    steps.note_empty_read(state, a, epoch=1, now=clock.now(), next_awake_s=2.0)
    clock.advance(steps.IDLE_BACKOFF_S)
    assert _plan([a], budget=1, now=clock.now()) == []
    clock.advance(2.0 - steps.IDLE_BACKOFF_S)
    assert _plan([a], budget=1, now=clock.now()) == ["a"]
    assert state.epoch_reads == 0  # an empty read still does not fill its epoch


def test_a_reader_asking_for_no_wait_is_read_again_at_once_after_an_empty_read():
    state, a = LoopState(epoch=1), _split("a")
    steps.note_empty_read(state, a, epoch=1, now=10.0, next_awake_s=0.0)
    assert _plan([a], budget=1, now=10.0) == ["a"]


def test_a_read_with_rows_waits_only_when_its_reader_asks():
    clock = FakeClock(10.0)
    asked, default = _split("asked"), _split("default")
    steps.note_next_awake(asked, clock.now(), 1.5)
    steps.note_next_awake(default, clock.now(), None)
    assert _plan([asked, default], budget=2, now=clock.now()) == ["default", "default"]
    clock.advance(1.5)
    assert "asked" in _plan([asked, default], budget=8, now=clock.now())


class _Waiting(SplitReader):
    """One batch, then nothing; asks to be read again after ``wake``."""

    def __init__(self, wake: Any) -> None:
        self.wake = wake

    def read(self, max_rows: int) -> pa.Table | None:
        return pa.table({"x": [1]})

    @property
    def finished(self) -> bool:
        return False

    def snapshot(self) -> Any:
        return None

    def next_awake(self) -> Any:
        return self.wake


def _meta(reader: SplitReader) -> dict[str, Any]:
    worker = ReaderWorker(TestSource([]), JobContext(job_id="j"))
    worker._readers["s"] = reader
    meta, _, _ = worker.read("s", 10)
    return meta


def test_the_read_meta_carries_the_reader_s_next_awake_as_a_delay():
    assert _meta(_Waiting(0.25))["next_awake_s"] == 0.25
    assert _meta(_Waiting(-1))["next_awake_s"] == 0.0  # past: at once
    assert "next_awake_s" not in _meta(_Waiting(None))  # the default


def test_a_next_awake_that_is_not_seconds_names_the_source_and_split():
    with pytest.raises(ConfigError, match=r"split 's': next_awake\(\) must return seconds"):
        _meta(_Waiting("soon"))
