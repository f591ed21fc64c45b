"""Checkpoint and resume: the trainer is killed with batches in the buffer; the run resumes
from its checkpoint and, in the end, every prompt was trained exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.core.checkpoint import CheckpointStore
from tideflow.rl import (
    CheckpointConfig,
    DataConfig,
    ModelConfig,
    RLConfig,
    RoleFailedError,
    RolloutConfig,
    TrainerConfig,
    train,
)
from tideflow.rl.toy import DigitTask

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PROMPTS, STEPS = 4, 8


def test_a_killed_trainer_resumes_and_trains_every_prompt_exactly_once(
    ray_session, digit_model, tmp_path
) -> None:
    import ray

    uri = str(tmp_path / "ckpt")
    config = RLConfig(
        model=ModelConfig(path=digit_model),
        data=DataConfig(num_prompts=PROMPTS * STEPS, prompts_per_step=PROMPTS),
        rollout=RolloutConfig(samples_per_prompt=4, max_tokens=DigitTask().max_tokens),
        # Four passes per batch: training is slower than generating, so the buffer fills.
        trainer=TrainerConfig(lr=1e-3, ppo_epochs=4),
        checkpoint=CheckpointConfig(uri=uri, every_steps=2),
        buffer_size=3,
        total_steps=STEPS,
    )
    seen: dict[str, Any] = {}

    def kill_after_step_4(metrics: Any, trainer: Any) -> None:
        if metrics.step == 4:
            seen["waiting"] = ray.get(trainer.roles.buffer.stats.remote())["waiting"]
            ray.kill(trainer.roles.trainer)

    with pytest.raises(RoleFailedError):
        train(config, on_step=kill_after_step_4)
    assert seen["waiting"] >= 1  # killed with scored batches in the buffer
    latest = CheckpointStore(uri).load()
    assert int(latest.checkpoint_id) == 4
    in_checkpoint = [b["index"] for b in latest.states["buffer"]["batches"]]
    assert in_checkpoint and min(in_checkpoint) >= 4

    resumed = train(config)
    assert resumed.resumed_from == 4
    assert resumed.restored_batches == in_checkpoint
    assert [s.step for s in resumed.steps] == list(range(4, STEPS))
    # Restored batches keep the policy version that generated them.
    assert all(s.max_lag <= config.staleness_limit for s in resumed.steps)
    ledger = resumed.trained_prompt_ids
    assert len(ledger) == STEPS
    trained = sorted(i for ids in ledger for i in ids)
    assert trained == list(range(PROMPTS * STEPS))  # each prompt once: none lost, none twice
