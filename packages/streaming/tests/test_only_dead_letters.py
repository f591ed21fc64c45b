"""A run whose every row went to the dead letters ends without an error, but says so: in its
result (``JobResult.only_dead_letters``) and in a warning naming the dead-letter output."""

from __future__ import annotations

import pytest
from _udfs import FailOn, always_fails, rows
from structlog.testing import capture_logs

from tideflow.streaming import CheckpointConfig, JobResult, Pipeline
from tideflow.streaming.testing import CollectingSink, TestSource


@pytest.mark.parametrize(
    ("rows_in", "rows_out", "dead_letters", "expected"),
    [
        (10, 0, 10, True),  # every row failed
        (0, 0, 3, True),  # the source could not decode any record (counted as dead letters)
        (10, 7, 3, False),  # some rows were written
        (10, 10, 0, False),  # a clean run
        (0, 0, 0, False),  # nothing to read: empty, not failed
        (10, 0, 0, False),  # every row filtered out, none failed
    ],
)
def test_only_dead_letters_means_nothing_written_and_something_dead_lettered(
    rows_in, rows_out, dead_letters, expected
):
    result = JobResult(job_id="j", rows_in=rows_in, rows_out=rows_out, dead_letters=dead_letters)

    assert result.only_dead_letters is expected


def _warnings(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e["event"] == "job.all_dead_lettered"]


@pytest.mark.ray
def test_a_run_whose_every_row_fails_says_so_and_where_the_dead_letters_are(ray_session, tmp_path):
    with capture_logs() as logs:
        result = (
            Pipeline.read(TestSource([rows(32), rows(32, 32)]))
            .map_batches(always_fails, num_cpus=0.25)
            .write(CollectingSink(str(tmp_path / "out")))
            .run(job_id="all-dead", checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")))
        )

    assert result.only_dead_letters
    (warning,) = _warnings(logs)
    assert warning["log_level"] == "warning"
    assert (warning["rows_in"], warning["dead_letters"]) == (64, 64)
    assert str(tmp_path / "ck" / "all-dead" / "dead_letters") in warning["dead_letter_output"]


@pytest.mark.ray
def test_a_run_that_writes_rows_beside_its_dead_letters_does_not_warn(ray_session, tmp_path):
    with capture_logs() as logs:
        result = (
            Pipeline.read(TestSource([rows(8, start) for start in range(0, 64, 8)]))
            .map_batches(FailOn, fn_constructor_args=(16,), num_cpus=0.25)
            .write(CollectingSink(str(tmp_path / "out")))
            .run(job_id="some-dead", checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")))
        )

    assert result.rows_out > 0 and result.dead_letters > 0
    assert not result.only_dead_letters
    assert _warnings(logs) == []
