"""The engine's behaviour on a real local Ray: dead letters, backpressure, unbounded runs."""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pytest
from _udfs import NamesBadRows, Poison, Slow, add_one, always_fails, rows

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming._prometheus import exposition
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestSource

pytestmark = pytest.mark.ray


def test_a_bounded_job_writes_every_row_and_reports_its_stages(ray_session, tmp_path):
    source = TestSource([rows(100, start) for start in range(0, 1000, 100)])
    result = (
        Pipeline.read(source)
        .map_batches(add_one, num_cpus=0.25)
        .filter(lambda r: r["id"] % 2 == 0, num_cpus=0.25, name="evens")
        .write(CollectingSink(str(tmp_path / "out")))
        .run(job_id="bounded", checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")))
    )
    out = CollectingSink.read(str(tmp_path / "out"))
    assert sorted(out.column("id").to_pylist()) == list(range(0, 1000, 2))
    assert out.column("x").to_pylist()[:3] == [1, 3, 5]
    assert (result.rows_in, result.rows_out) == (1000, 500)
    assert result.stages["add_one"].rows_out == 1000
    assert result.stages["evens"].rows_out == 500
    assert result.checkpoints  # at least the final one


def test_a_finished_bounded_job_run_again_writes_nothing_new(ray_session, tmp_path):
    pipe = (
        Pipeline.read(TestSource([rows(50)]))
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
    )
    ckpt = CheckpointConfig(uri=str(tmp_path / "ck"))
    first = pipe.run(job_id="again", checkpoint=ckpt)
    second = pipe.run(job_id="again", checkpoint=ckpt)
    assert first.rows_out == 50
    assert (second.rows_in, second.rows_out) == (0, 0)
    assert second.restored_from is not None
    assert CollectingSink.read(str(tmp_path / "out")).num_rows == 50


def test_a_stage_that_raises_on_every_record_does_not_hang_the_job(ray_session, tmp_path):
    dead = CollectingSink(str(tmp_path / "dead"))
    result = (
        Pipeline.read(TestSource([rows(64, s) for s in range(0, 256, 64)]))
        .map_batches(always_fails, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="fails", checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")), dead_letter=dead
        )
    )
    assert result.rows_out == 0
    assert result.dead_letters == 256
    letters = CollectingSink.read(str(tmp_path / "dead"))
    assert letters.num_rows == 256
    assert set(letters.column("stage").to_pylist()) == {"always_fails"}


def test_a_slow_last_stage_back_pressures_upstream_within_the_queue_bounds(ray_session, tmp_path):
    depths: list[int] = []
    source = TestSource([rows(10, s) for s in range(0, 600, 10)])
    result = (
        Pipeline.read(source, batch_size=10)
        .map_batches(add_one, num_cpus=0.25, name="fast")
        .map_batches(Slow, num_cpus=0.25, name="slow", fn_constructor_args=(0.05,))
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="pressure",
            queue_limit=4,
            on_progress=lambda r: depths.append(r.stages["slow"].queue_depth),
        )
    )
    assert result.rows_out == 600
    assert depths and max(depths) <= 4
    # Memory stays flat: the batches held at once are bounded by the queue limits (reads
    # and each queue ≤ 4, calls ≤ 2 per actor + 2, writes ≤ 4), not by the input's 60.
    assert result.peak_batches_held <= 4 + 2 * (4 + 4) + 4
    fast = result.stages["fast"]
    assert fast.backpressure_s > 0.5
    assert fast.backpressure_reason == "queue of 'slow' full"


def test_unbounded_source_flushes_after_idle_and_stop_takes_a_final_checkpoint(
    ray_session, tmp_path
):
    items = [rows(10), rows(10, 10), TestSource.PAUSE(1.0), rows(10, 20), TestSource.PAUSE(600)]
    pipe = (
        Pipeline.read(TestSource(items, unbounded=True))
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
    )
    ckpt = CheckpointConfig(uri=str(tmp_path / "ck"), interval_s=0.5)
    job = pipe.start(job_id="live", checkpoint=ckpt)
    started = time.monotonic()
    while job.progress.rows_out < 30 and time.monotonic() - started < 60:
        time.sleep(0.05)
    arrived = time.monotonic() - started
    assert job.progress.rows_out == 30
    job.stop()
    result = job.wait(timeout=60)
    assert arrived < 30  # the batch after the idle period came without waiting for more rows
    assert CollectingSink.read(str(tmp_path / "out")).num_rows == 30
    assert result.checkpoints

    rerun = pipe.start(job_id="live", checkpoint=ckpt)
    time.sleep(1.0)
    rerun.stop()
    again = rerun.wait(timeout=60)
    assert again.restored_from == result.checkpoints[-1].checkpoint_id
    assert again.rows_in == 0
    assert CollectingSink.read(str(tmp_path / "out")).num_rows == 30


def test_on_complete_gets_every_committed_id_in_chunks(ray_session, tmp_path):
    seen: list[list[int]] = []
    Pipeline.read(TestSource([rows(40, s) for s in range(0, 200, 40)])).map_batches(
        add_one, num_cpus=0.25
    ).write(CollectingSink(str(tmp_path / "out"))).run(
        job_id="callbacks",
        checkpoint=CheckpointConfig(uri=str(tmp_path / "ck"), interval_s=0.2),
        on_complete=seen.append,
        id_column="id",
        complete_every=30,
    )
    assert sorted(i for chunk in seen for i in chunk) == list(range(200))
    assert max(len(chunk) for chunk in seen) <= 30


def test_metrics_are_exposed_in_prometheus_format(ray_session, tmp_path):
    result = (
        Pipeline.read(TestSource([rows(20)]))
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(job_id="prom")
    )
    text = exposition(result)
    assert 'tideflow_stage_rows_out_total{job="prom",stage="add_one"} 20.0' in text
    assert "tideflow_checkpoints_completed_total" in text


def test_functions_may_return_dicts_of_columns(ray_session, tmp_path):
    def to_dict(table: pa.Table) -> dict:
        return {"id": table.column("id"), "double": [2 * i for i in table.column("id").to_pylist()]}

    Pipeline.read(TestSource([rows(5)])).map_batches(to_dict, num_cpus=0.25).write(
        CollectingSink(str(tmp_path / "out"))
    ).run(job_id="dicts")
    assert CollectingSink.read(str(tmp_path / "out")).column("double").to_pylist() == [
        0,
        2,
        4,
        6,
        8,
    ]


def test_iter_batches_yields_every_row_of_a_bounded_job_in_order(ray_session):
    source = TestSource([rows(30, s) for s in range(0, 300, 30)])
    pipe = Pipeline.read(source).map_batches(add_one, num_cpus=0.25)
    tables = list(pipe.iter_batches(interval_s=0.2))
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    assert ids == list(range(300))
    assert all(isinstance(t, pa.Table) for t in tables)


def test_a_record_that_kills_its_actor_every_time_is_split_out_to_the_dead_letters(
    ray_session, tmp_path
):
    result = (
        Pipeline.read(TestSource([rows(8, s) for s in range(0, 32, 8)]), batch_size=8)
        .map_batches(Poison, num_cpus=0.25, max_retries=0, fn_constructor_args=(13,))
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="poison",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")),
            dead_letter=CollectingSink(str(tmp_path / "dead")),
        )
    )
    out = CollectingSink.read(str(tmp_path / "out"))
    assert out.column("id").to_pylist() == [i for i in range(32) if i != 13]
    letters = CollectingSink.read(str(tmp_path / "dead")).to_pylist()
    assert [json.loads(r["record"])["id"] for r in letters] == [13]
    assert "died" in letters[0]["error"].lower() or "actor" in letters[0]["error"].lower()
    assert result.dead_letters == 1


def test_urgent_records_overtake_queued_ones(ray_session, tmp_path):
    normal = [[{"id": i, "priority": 0}] for i in range(12)]
    urgent = [[{"id": 100, "priority": 9}]]
    source = TestSource([*normal, TestSource.PAUSE(1.5), *urgent, TestSource.EOF], unbounded=True)
    (
        Pipeline.read(source, priority_column="priority")
        .map_batches(Slow, num_cpus=0.25, fn_constructor_args=(0.3,), max_in_flight=1)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(job_id="urgent", queue_limit=20)
    )
    order = CollectingSink.read(str(tmp_path / "out")).column("id").to_pylist()
    assert sorted(order) == [*range(12), 100]
    # Read after 1.5 s, while normal batches still waited (0.3 s each): it went first.
    assert order.index(100) < 11
    assert [i for i in order if i != 100] == list(range(12))


def test_a_function_may_name_its_bad_rows_and_runs_once_per_batch(ray_session, tmp_path):
    log = tmp_path / "calls.log"
    result = (
        Pipeline.read(TestSource([rows(20, s) for s in range(0, 100, 20)]), batch_size=20)
        .map_batches(NamesBadRows, num_cpus=0.25, fn_constructor_args=(str(log),))
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="named",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")),
            dead_letter=CollectingSink(str(tmp_path / "dead")),
        )
    )
    out = CollectingSink.read(str(tmp_path / "out"))
    assert out.column("id").to_pylist() == [i for i in range(100) if i % 5]
    letters = CollectingSink.read(str(tmp_path / "dead")).to_pylist()
    assert sorted(json.loads(r["record"])["id"] for r in letters) == list(range(0, 100, 5))
    assert all("multiple of 5" in r["error"] for r in letters)
    assert result.dead_letters == 20
    assert log.read_text().split() == ["20"] * 5  # no bisection: one call per batch


def test_max_batches_closes_an_epoch_before_its_interval(ray_session, tmp_path):
    # An interval far longer than the job: only the cap can close the epochs early.
    ckpt = CheckpointConfig(uri=str(tmp_path / "ck"), interval_s=600, max_batches=2, retain=20)
    result = (
        Pipeline.read(TestSource([rows(10, start) for start in range(0, 100, 10)]), batch_size=10)
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(job_id="capped", checkpoint=ckpt)
    )
    out = CollectingSink.read(str(tmp_path / "out"))
    assert sorted(out.column("id").to_pylist()) == list(range(100))
    assert len(result.checkpoints) >= 5  # 10 batches, at most 2 an epoch


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_max_batches_must_be_a_positive_int(bad, tmp_path):
    with pytest.raises(ConfigError, match="max_batches"):
        CheckpointConfig(uri=str(tmp_path), max_batches=bad)


def test_backpressure_by_reason_and_restarts_are_prometheus_metrics():
    from tideflow.streaming._metrics import JobResult, StageMetrics

    result = JobResult(job_id="prom2", restarts=2)
    stage = StageMetrics(name="embed")
    stage.backpressure_reasons = {"queue of write full": 1.5}
    result.stages = {"embed": stage}
    result.source.backpressure_reasons = {"queue of embed full": 0.25}
    text = exposition(result)

    assert (
        'tideflow_stage_backpressure_reason_seconds_total{job="prom2",reason="queue of write'
        ' full",stage="embed"} 1.5' in text
    )
    assert 'reason="queue of embed full",stage="source"} 0.25' in text
    assert 'tideflow_job_restarts_total{job="prom2"} 2.0' in text
