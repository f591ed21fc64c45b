"""A rollout worker killed mid-generation loses no prompt: its shard is generated again by
a live worker, a replacement starts, and the ledger holds every prompt exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.rl import DataConfig, ModelConfig, RLConfig, RLTrainer, RolloutConfig, TrainerConfig
from tideflow.rl.toy import DigitTask

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PROMPTS, SAMPLES, STEPS = 8, 8, 8


class KillOnce:
    """From ``on_step``: kill (``ray.kill``) one rollout worker that is generating a shard."""

    def __init__(self, from_step: int) -> None:
        self.from_step = from_step
        self.killed: tuple[int, int] | None = None  # (rank, batch of the lost shard)
        self.pool: Any = None

    def __call__(self, metrics: Any, trainer: RLTrainer) -> None:
        import ray

        self.pool = trainer.roles.pool
        if self.killed is not None or metrics.step < self.from_step:
            return
        for rank, handle, shard in self.pool.busy():
            ray.kill(handle)
            self.killed = (rank, shard.batch)
            return


def test_a_rollout_worker_killed_mid_generation_loses_no_prompt(ray_session, digit_model) -> None:
    config = RLConfig(
        model=ModelConfig(path=digit_model),
        data=DataConfig(num_prompts=PROMPTS * STEPS, prompts_per_step=PROMPTS, shuffle=False),
        rollout=RolloutConfig(
            num_workers=2,
            samples_per_prompt=SAMPLES,
            max_tokens=DigitTask().max_tokens,
            max_batch_size=4,  # a shard takes several engine calls: the kill lands inside one
            prompts_per_request=2,
        ),
        trainer=TrainerConfig(lr=1e-3),
        buffer_size=2,
        total_steps=STEPS,
        seed=3,
    )
    killer = KillOnce(from_step=1)
    result = RLTrainer(config, on_step=killer).run()

    assert killer.killed is not None, "no worker was generating after any step"
    rank, _ = killer.killed
    assert result.rollout_restarts == 1
    # The lost shard was generated again, by another worker.
    again = [r for r in killer.pool.records if r.attempt == 1]
    assert again and all(r.rank != rank for r in again)
    later = [r for r in killer.pool.records if r.interval[0] > again[0].interval[0]]
    assert all(r.rank != rank for r in later)  # the dead worker generated nothing more
    assert [s.step for s in result.steps] == list(range(STEPS))
    assert all(s.samples == PROMPTS * SAMPLES for s in result.steps)
    trained = sorted(i for ids in result.trained_prompt_ids for i in ids)
    assert trained == list(range(PROMPTS * STEPS))  # each prompt once: none lost, none twice
