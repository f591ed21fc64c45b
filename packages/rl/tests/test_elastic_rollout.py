"""An elastic rollout pool on a real local Ray: it grows while the trainer waits for samples
and shrinks while the trainer is slowed (the buffer stays full), scaling at most once per
debounce window; a worker that joins late generates with the current weights."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from tideflow.rl import (
    DataConfig,
    ModelConfig,
    RLConfig,
    RLTrainer,
    RolloutAutoscaleConfig,
    RolloutConfig,
    TrainerConfig,
)
from tideflow.rl.toy import DigitTask

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PROMPTS, SAMPLES, STEPS = 16, 8, 400  # the run is stopped once the pool has shrunk
AUTOSCALE = RolloutAutoscaleConfig(
    min_workers=1, max_workers=2, window_s=1.0, debounce_s=2.0, sample_interval_s=0.1
)


class Pacer:
    """Paces the trainer from ``on_step``: at full speed until the pool has grown and its new
    worker has generated, then slowed (a pause after each step) until the pool shrinks; then
    the run stops."""

    def __init__(self, pause_s: float) -> None:
        self.pause_s = pause_s
        self.slowed_at: float | None = None
        self.pool: Any = None

    def __call__(self, metrics: Any, trainer: RLTrainer) -> Any:
        pool = trainer.roles.pool
        self.pool = pool
        directions = [e.direction for e in pool.events]
        joined = any(r.rank > 0 for r in pool.records)
        if "down" in directions:
            trainer.stop()
        elif "up" in directions and joined:
            if self.slowed_at is None:
                self.slowed_at = metrics.wall_s
            return asyncio.sleep(self.pause_s)
        return None


@pytest.fixture(scope="module")
def elastic_run(ray_session, digit_model) -> tuple[Any, Pacer]:
    config = RLConfig(
        model=ModelConfig(path=digit_model),
        data=DataConfig(num_prompts=PROMPTS * STEPS, prompts_per_step=PROMPTS, shuffle=False),
        # Two prompts per request and small engine batches: generation is slower than
        # training, so at full speed the trainer waits for samples.
        rollout=RolloutConfig(
            samples_per_prompt=SAMPLES,
            max_tokens=DigitTask().max_tokens,
            max_batch_size=4,
            prompts_per_request=2,
            autoscale=AUTOSCALE,
        ),
        trainer=TrainerConfig(lr=1e-3),
        buffer_size=2,
        total_steps=STEPS,
        seed=3,
    )
    pacer = Pacer(pause_s=1.5)
    result = RLTrainer(config, on_step=pacer).run()
    return result, pacer


def test_the_pool_grows_while_the_trainer_waits_and_shrinks_while_it_is_slowed(
    elastic_run,
) -> None:
    result, pacer = elastic_run
    sizes = [(e.from_size, e.to_size) for e in result.scale_events]
    assert sizes[:2] == [(1, 2), (2, 1)], result.scale_events
    up, down = result.scale_events[:2]
    assert "utilization" in up.reason and up.duration_s is not None  # the new worker started
    assert pacer.slowed_at is not None
    assert down.time > up.time
    # Recorded in the step metrics too: the pool had two workers, then one again.
    workers = [s.rollout_workers for s in result.steps]
    assert 1 in workers[workers.index(2) :]


def test_the_pool_scales_at_most_once_per_debounce_window(elastic_run) -> None:
    result, _ = elastic_run
    for before, after in itertools.pairwise(result.scale_events):
        assert after.time - before.time >= AUTOSCALE.debounce_s


def test_an_elastic_run_trains_every_prompt_exactly_once(elastic_run) -> None:
    result, _ = elastic_run
    trained = sorted(i for ids in result.trained_prompt_ids for i in ids)
    assert len(result.steps) < STEPS  # stopped early
    assert trained == list(range(PROMPTS * len(result.steps)))
    assert all(s.samples == PROMPTS * SAMPLES for s in result.steps)


def test_a_worker_that_joins_late_generates_with_the_current_version(elastic_run) -> None:
    _, pacer = elastic_run
    late = [r for r in pacer.pool.records if r.rank > 0]
    assert late, "no worker joined"
    first = min(late, key=lambda r: r.interval[0])
    assert first.current_version > 0  # it joined after the first weight updates
    assert first.versions == (first.current_version, first.current_version)
