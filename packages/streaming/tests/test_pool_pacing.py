"""How backpressure and the autoscaler see a stage's pool under a small queue limit: calls
that finished behind a slow one do not hold back the stage's other actors, and a queue
that waits for the stage's own actors counts as their backlog."""

from __future__ import annotations

import pytest
from _udfs import Slow, TimedSleep, rows

from tideflow.streaming import Pipeline
from tideflow.streaming.testing import CollectingSink, TestSource

pytestmark = pytest.mark.ray


def test_a_slow_call_does_not_idle_the_stages_other_actor(ray_session, tmp_path):
    # Batch 0 takes 5 s, the others 0.05 s, on a pool of 2 actors (one call each at a
    # time) behind a queue limit of 2. Outputs leave in input order, so the fast batches
    # finish behind batch 0 and wait for it; they must not count as running, or the second
    # actor sits idle after one batch. It may take as many as the stage can hold: its
    # capacity, (2 actors + 1) × 1 call, less batch 0.
    source = TestSource([rows(1, start) for start in range(12)])
    (
        Pipeline.read(source, batch_size=1)
        .map_batches(
            TimedSleep,
            name="timed",
            num_cpus=0.25,
            concurrency=2,
            max_in_flight=1,
            fn_constructor_args=(0, 5.0, 0.05),
        )
        .write(CollectingSink(str(tmp_path / "out")))
        .run(job_id="pacing", queue_limit=2, progress=False)
    )
    out = CollectingSink.read(str(tmp_path / "out")).to_pylist()
    assert sorted(r["id"] for r in out) == list(range(12))
    slow = next(r for r in out if r["id"] == 0)
    beside = [r for r in out if r["id"] != 0 and r["start"] < slow["end"]]
    # Counting finished calls as running, only batch 1 ran beside batch 0.
    assert len(beside) == 2, sorted((r["id"], round(r["start"] - slow["start"], 2)) for r in out)
    assert {r["pid"] for r in beside} == {r["pid"] for r in out} - {slow["pid"]}


def test_a_stage_whose_own_calls_fill_the_queue_limit_scales_up(ray_session, tmp_path):
    # A queue limit of 2 lets the stage have 2 calls in flight: both go to its one actor
    # (2 per actor) and nothing ever waits in the pool's own queue. The batches waiting
    # in the stage's queue are its backlog: the pool grows to its max of 2.
    source = TestSource([rows(1, start) for start in range(60)])
    result = (
        Pipeline.read(source, batch_size=1)
        .map_batches(
            Slow, name="slow", num_cpus=0.25, concurrency=(1, 2), fn_constructor_args=(0.2,)
        )
        .write(CollectingSink(str(tmp_path / "out")))
        .run(job_id="backlog", queue_limit=2, progress=False)
    )
    assert result.rows_out == 60
    ups = [e for e in result.stages["slow"].scale_events if e.to_size > e.from_size]
    assert ups and ups[0].to_size == 2, result.stages["slow"].scale_events
