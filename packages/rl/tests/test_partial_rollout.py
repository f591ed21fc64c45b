"""Partial rollouts on a real local Ray: with one-token segments and buffer_size 2, a
generation that spans a weight update continues with the new weights, and every token keeps
the version that produced it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tideflow.rl import (
    DataConfig,
    ModelConfig,
    RLConfig,
    RLTrainer,
    RolloutConfig,
    Sample,
    TrainerConfig,
)
from tideflow.rl.toy import DigitTask

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PROMPTS, SAMPLES, STEPS = 16, 8, 8


class Recording(RLTrainer):
    """The trainer, keeping each batch's generated parts where they go to be scored."""

    def __init__(self, config: RLConfig) -> None:
        super().__init__(config)
        self.parts: dict[int, list[Any]] = {}
        self.pool: Any = None

    def _submit_scoring(self, index: int, parts: list[Any]) -> Any:
        self.parts[index] = parts
        self.pool = self.roles.pool  # the run's pool: its shard records outlive the run
        return super()._submit_scoring(index, parts)

    def samples(self) -> dict[int, list[Sample]]:
        import ray

        return {
            index: [Sample.from_dict(s) for part in ray.get(parts) for s in part["samples"]]
            for index, parts in self.parts.items()
        }


@pytest.fixture(scope="module")
def partial_run(ray_session, digit_model) -> tuple[Any, dict[int, list[Sample]], Any]:
    config = RLConfig(
        model=ModelConfig(path=digit_model),
        data=DataConfig(num_prompts=PROMPTS * STEPS, prompts_per_step=PROMPTS, shuffle=False),
        rollout=RolloutConfig(
            samples_per_prompt=SAMPLES,
            max_tokens=DigitTask().max_tokens,
            max_batch_size=16,  # a segment takes several engine calls: updates land inside
            partial_rollout=True,
            segment_tokens=1,
        ),
        trainer=TrainerConfig(lr=1e-3),
        buffer_size=2,
        total_steps=STEPS,
        seed=3,
    )
    trainer = Recording(config)
    result = trainer.run()
    return result, trainer.samples(), trainer


def test_a_generation_that_spans_a_weight_update_holds_tokens_of_two_versions(
    partial_run,
) -> None:
    result, batches, _ = partial_run
    samples = [s for batch in batches.values() for s in batch]
    assert len(samples) == STEPS * PROMPTS * SAMPLES
    mixed = [s for s in samples if len(set(s.token_versions)) > 1]
    assert mixed
    assert sum(s.mixed_version_samples for s in result.steps) == len(mixed)


def test_token_versions_never_decrease_and_are_those_published_during_the_generation(
    partial_run,
) -> None:
    result, batches, trainer = partial_run
    # When each version's training ended: it can be loaded from then on (step s makes s + 1).
    trained_at = {s.version: s.train_interval[1] for s in result.steps}
    records = trainer.pool.records
    for index, samples in batches.items():
        (record,) = [r for r in records if r.batch == index]  # one shard a batch
        for sample in samples:
            versions = sample.token_versions
            assert len(versions) == len(sample.response_token_ids)
            assert all(a <= b for a, b in itertools.pairwise(versions)), versions
            assert versions[0] == record.current_version == sample.version  # its start
            for version in set(versions) - {record.current_version}:
                assert trained_at[version] <= record.interval[1]  # it existed by then


def test_per_token_lags_are_counted_in_the_step_metrics(partial_run) -> None:
    result, _, _ = partial_run
    for step in result.steps:
        tokens = sum(step.token_staleness.values())
        assert tokens == round(step.response_len_mean * step.samples)
        # A sample's lag is that of its oldest token: no token lags more.
        assert max(step.token_staleness) <= step.max_lag
