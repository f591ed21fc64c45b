"""The connector kit: the helpers every connector shares, checked on their own (no Ray)."""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from structlog.testing import capture_logs

from tideflow.core.errors import MissingDependencyError
from tideflow.core.observability import get_logger
from tideflow.streaming.connectors import JobContext
from tideflow.streaming.connectors._kit import (
    Position,
    RemovesStaged,
    StagedName,
    after,
    dead_letter,
    guarded,
    json_default,
    only,
    parse_position,
    skip_rows,
)
from tideflow.streaming.errors import SinkError, SourceError

CTX = JobContext(job_id="job", run=1)


def _fail(error: Exception) -> Callable[[], None]:
    def fn() -> None:
        raise error

    return fn


def test_guarded_returns_what_the_call_returns():
    assert guarded("Sink('x')", "add", SinkError, lambda a, b: a + b, 1, b=2) == 3


def test_guarded_names_the_owner_and_the_step_and_masks_credentials():
    error = OSError("denied for s3://KEY:SECRET@bucket/a")
    with pytest.raises(SinkError) as caught:
        guarded("Sink('x')", "write s3://KEY:SECRET@bucket/a", SinkError, _fail(error))
    message = str(caught.value)
    assert message == (
        "Sink('x'): cannot write s3://***@bucket/a: OSError: denied for s3://***@bucket/a"
    )
    assert caught.value.__context__ is None  # the raw error, secrets and all, is left behind


def test_guarded_lets_errors_outside_catch_through():
    with pytest.raises(KeyError):
        guarded("Sink('x')", "look up", SinkError, _fail(KeyError("k")))


def test_guarded_lets_a_missing_dependency_through_even_when_it_catches_everything():
    missing = MissingDependencyError("pylance", 'pip install "tideflow-streaming[lance]"')
    with pytest.raises(MissingDependencyError):
        guarded("Sink('x')", "open", SinkError, _fail(missing), catch=(Exception,))


def test_parse_position_starts_at_the_beginning_without_state():
    assert parse_position("Src", "s", ["a", "b"], None) == Position(0, 0)


def test_parse_position_reads_part_and_row():
    state = {"part": 1, "row": 7, "name": "b"}
    assert parse_position("Src", "s", ["a", "b"], state) == Position(1, 7)


def test_parse_position_takes_other_key_names():
    state = {"file": 2, "row": 0, "path": None}
    keys = ("file", "row", "path")
    assert parse_position("Src", "s", ["a", "b"], state, keys=keys) == Position(2, 0)


def test_parse_position_refuses_a_state_out_of_range():
    with pytest.raises(SourceError, match=r'expected \{"part": 0\.\.2, "row": ≥ 0\}'):
        parse_position("Src", "s", ["a", "b"], {"part": 3, "row": 0})


def test_parse_position_says_what_changed_when_the_part_moved():
    state = {"part": 0, "row": 1, "name": "old"}
    with pytest.raises(SourceError, match=r"now holds 'a': the files moved$"):
        parse_position("Src", "s", ["a"], state, changed="the files moved")


def test_skip_rows_drops_rows_across_batches():
    batches = [pa.record_batch({"x": [0, 1, 2]}), pa.record_batch({"x": [3, 4]})]
    kept = [b.column(0).to_pylist() for b in skip_rows(iter(batches), 4)]
    assert kept == [[4]]


def test_staged_names_round_trip_with_and_without_a_file_number():
    for staged in (StagedName(42, 2, 3, 0, ".parquet"), StagedName(7, 1, 0, ext=".arrow")):
        assert StagedName.parse(staged.name) == staged
    assert StagedName(42, 2, 3, 1, ".jsonl").name == "epoch-000042-r002-w003-00001.jsonl"
    assert StagedName(42, 2, 3, ext=".arrow").name == "epoch-000042-r002-w003.arrow"


def test_a_name_that_is_not_staged_does_not_parse():
    assert StagedName.parse("job-e000001-w000-00000.parquet") is None
    assert StagedName.parse("epoch-000001-r001-w000") is None


def test_abort_removes_its_epoch_and_recovery_those_after_the_checkpoint():
    assert [e for e in range(5) if only(2)(e)] == [2]
    assert [e for e in range(5) if after(2)(e)] == [3, 4]
    assert [e for e in range(3) if after(None)(e)] == [0, 1, 2]


class _Staged(RemovesStaged):
    """A sink whose staged epochs are a list."""

    events = "test.sink"

    def __init__(self, staged: list[int]) -> None:
        self.staged = staged

    def writer(self, ctx: JobContext, index: int) -> Any:
        raise NotImplementedError

    def commit(self, ctx: JobContext, epoch: int, precommits: Any) -> None:
        raise NotImplementedError

    def remove_staged(self, ctx: JobContext, which: Callable[[int], bool]) -> int:
        removed = [e for e in self.staged if which(e)]
        self.staged = [e for e in self.staged if not which(e)]
        return len(removed)

    def _log(self) -> Any:
        return get_logger("test")


def test_removes_staged_aborts_one_epoch_and_logs_it():
    sink = _Staged([1, 2, 3])
    with capture_logs() as logs:
        sink.abort(CTX, 2, [])
    assert sink.staged == [1, 3]
    assert [(e["event"], e["removed"]) for e in logs] == [("test.sink.aborted", 1)]


def test_removes_staged_recovers_to_the_checkpoint_and_logs_it():
    sink = _Staged([1, 2, 3])
    with capture_logs() as logs:
        sink.recover(CTX, 1)
    assert sink.staged == [1]
    assert [(e["event"], e["removed"]) for e in logs] == [("test.sink.recovered", 2)]


def test_json_default_writes_values_json_has_no_type_for_as_text():
    row = {
        "b": b"\x00\x01",
        "d": datetime.date(2024, 5, 1),
        "t": datetime.timedelta(seconds=1.5),
        "n": decimal.Decimal("1.10"),
    }
    assert json.loads(json.dumps(row, default=json_default)) == {
        "b": "AAE=",
        "d": "2024-05-01",
        "t": 1.5,
        "n": "1.10",
    }


def test_dead_letter_carries_the_offset_only_in_ack_mode():
    assert dead_letter("bad", {"k": 1}) == {"error": "bad", "record": {"k": 1}}
    assert dead_letter("bad", None, offset=4) == {"error": "bad", "record": None, "offset": 4}
