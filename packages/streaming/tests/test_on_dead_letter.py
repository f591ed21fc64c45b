"""``on_dead_letter``: the job tells the user about each dead-letter row once it is
committed, in epoch mode and in record-level ACK mode, on a real local Ray."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from _udfs import FailOn, Poison, rows

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestSource

pytestmark = pytest.mark.ray


class Recorder:
    """Collects the rows the callback gets (from a thread of the job)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            self.rows.extend(rows)

    def ids(self) -> list[int]:
        return sorted(json.loads(r["record"])["id"] for r in self.rows)


def test_rows_a_stage_rejects_reach_on_dead_letter_after_their_epoch_commits(ray_session, tmp_path):
    seen = Recorder()
    dead = CollectingSink(str(tmp_path / "dead"))
    result = (
        Pipeline.read(TestSource([rows(25, s) for s in range(0, 100, 25)]), batch_size=25)
        .map_batches(FailOn, num_cpus=0.25, fn_constructor_args=(20,), name="checker")
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="dl-callback",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck"), max_batches=1),
            dead_letter=dead,
            on_dead_letter=seen,
        )
    )
    assert seen.ids() == [19, 39, 59, 79, 99]
    assert {r["stage"] for r in seen.rows} == {"checker"}
    assert all("cannot process id" in r["error"] for r in seen.rows)
    # What the callback got is what the dead-letter output holds, epoch included.
    written = CollectingSink.read(str(tmp_path / "dead")).to_pylist()
    key = lambda r: (r["record"], r["epoch"])  # noqa: E731
    assert sorted(map(key, seen.rows)) == sorted(map(key, written))
    assert result.dead_letters == 5


def test_a_row_that_kills_its_actor_reaches_on_dead_letter(ray_session, tmp_path):
    seen = Recorder()
    (
        Pipeline.read(TestSource([rows(8)]), batch_size=8)
        .map_batches(Poison, num_cpus=0.25, fn_constructor_args=(5,), max_retries=0)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="dl-poison",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")),
            dead_letter=CollectingSink(str(tmp_path / "dead")),
            on_dead_letter=seen,
        )
    )
    assert seen.ids() == [5]


def test_ack_mode_reports_dead_letters_as_they_are_committed(ray_session, tmp_path):
    seen = Recorder()
    source = TestSource([rows(25, s) for s in range(0, 100, 25)], offsets=True)
    (
        Pipeline.read(source, batch_size=10)
        .map_batches(FailOn, num_cpus=0.25, fn_constructor_args=(50,))
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="dl-ack",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck"), mode="ack"),
            dead_letter=CollectingSink(str(tmp_path / "dead")),
            on_dead_letter=seen,
        )
    )
    assert seen.ids() == [49, 99]


def test_on_dead_letter_must_be_a_function(tmp_path):
    pipe = Pipeline.read(TestSource([rows(1)])).write(CollectingSink(str(tmp_path / "o")))
    with pytest.raises(ConfigError, match="on_dead_letter"):
        pipe.start(job_id="x", on_dead_letter="alerts")  # type: ignore[arg-type]
