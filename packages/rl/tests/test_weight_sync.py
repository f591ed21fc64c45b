"""Weight sync through Ray's object store: bitwise equal for any chunk size, and the rollout
engine then generates what the trainer's own model generates."""

from __future__ import annotations

import pytest

from tideflow.rl import ModelConfig, RLConfig, RolloutConfig, TrainerConfig, chunk_weights
from tideflow.rl._reward import RewardWorker
from tideflow.rl._rollout import RolloutWorker
from tideflow.rl._trainer_actor import TrainerWorker
from tideflow.rl.toy import DigitTask

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_chunks_hold_whole_tensors_in_order_within_the_size() -> None:
    import torch

    named = [(f"t{i}", torch.zeros(n)) for i, n in enumerate([4, 4, 16, 1, 1])]  # float32
    chunks = chunk_weights(named, chunk_bytes=32)
    assert [[name for name, _ in chunk] for chunk in chunks] == [
        ["t0", "t1"],
        ["t2"],  # larger than a chunk: alone
        ["t3", "t4"],
    ]
    assert len(chunk_weights(named, chunk_bytes=1 << 20)) == 1


def test_synced_weights_are_bitwise_equal_for_every_chunk_size_and_generate_alike(
    ray_session, digit_model
) -> None:
    import ray
    import torch
    from transformers import AutoTokenizer

    task = DigitTask()
    config = RLConfig(
        model=ModelConfig(path=digit_model),
        rollout=RolloutConfig(samples_per_prompt=4, max_tokens=task.max_tokens),
        trainer=TrainerConfig(lr=1e-2),  # large steps: every step changes every weight
    )
    trainer = ray.remote(TrainerWorker).options(num_cpus=1).remote(config)
    rollout = ray.remote(RolloutWorker).options(num_cpus=1).remote(config.rollout, config.model)
    ray.get([trainer.start.remote(), rollout.start.remote()])
    scorer = RewardWorker(config.reward.function)
    items = task.items(8, seed=11)
    tokenizer = AutoTokenizer.from_pretrained(digit_model)
    try:
        for step, chunk_bytes in enumerate([64, 2048, 1 << 16, 1 << 30]):
            part = ray.get(rollout.generate.remote(step, items, seed=step))
            ray.get(trainer.train.remote(scorer.score(step, part)))
            before = ray.get(rollout.weights.remote())
            expected = ray.get(trainer.weights.remote())
            assert any(not torch.equal(before[n], expected[n]) for n in expected)

            published = ray.get(trainer.publish.remote(chunk_bytes))
            assert published["version"] == step + 1
            if chunk_bytes == 64:  # every tensor is larger: one chunk each
                assert len(published["chunks"]) == len(expected)
            if chunk_bytes == 1 << 30:
                assert len(published["chunks"]) == 1
            ray.get(rollout.load_weights.remote(published["version"], published["chunks"]))
            after = ray.get(rollout.weights.remote())
            assert after.keys() == expected.keys()
            for name, tensor in expected.items():
                assert torch.equal(after[name], tensor), name
            assert ray.get(rollout.get_version.remote()) == step + 1

        for item in items:
            ids = tokenizer(item["prompt"])["input_ids"]
            mine = ray.get(trainer.greedy.remote(ids, task.max_tokens))
            theirs = ray.get(rollout.greedy.remote(ids, task.max_tokens))
            eos = tokenizer.eos_token_id
            mine = mine[: mine.index(eos) + 1] if eos in mine else mine
            assert theirs == mine
    finally:
        ray.kill(trainer)
        ray.kill(rollout)
