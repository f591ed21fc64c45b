"""A rollout worker that dies while it retires (a scale-down let it end its shard) loses no
prompt and is not replaced: the pool keeps the size the scale-down chose."""

from __future__ import annotations

import asyncio

import pytest

from tideflow.rl import DataConfig, ModelConfig, RLConfig, RolloutConfig
from tideflow.rl._rollout_pool import RolloutPool
from tideflow.rl.toy import DigitTask

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PROMPTS = 8


async def test_a_worker_killed_while_retiring_loses_no_prompt_and_is_not_replaced(
    ray_session: None, digit_model: str
) -> None:
    import ray

    config = RLConfig(
        model=ModelConfig(path=digit_model),
        data=DataConfig(num_prompts=PROMPTS, prompts_per_step=PROMPTS, shuffle=False),
        rollout=RolloutConfig(
            num_workers=2,
            samples_per_prompt=8,
            max_tokens=DigitTask().max_tokens,
            max_batch_size=4,  # a shard takes several engine calls: the kill lands inside one
            prompts_per_request=2,
        ),
    )
    pool = RolloutPool(config, trainer_waited=lambda: 0.0)
    try:
        await pool.start()
        items = DigitTask().items(PROMPTS, seed=5)
        batch = asyncio.create_task(pool.generate(0, items, seed=1))
        while len(pool.busy()) < 2:
            await asyncio.sleep(0.01)
        rank, handle, shard = pool.busy()[0]
        (worker,) = [w for w in pool._workers if w.rank == rank]
        pool._retire(worker)  # what a scale-down does to a busy worker: it ends its shard
        ray.kill(handle)

        parts, shards = await asyncio.wait_for(batch, timeout=120)

        assert pool.size == 1 and pool.restarts == 0  # no replacement undid the scale-down
        again = [r for r in pool.records if r.number == shard.number]
        assert [r.attempt for r in again] == [1] and again[0].rank != rank
        samples = [s for part in ray.get(parts) for s in part["samples"]]
        assert sorted({s["prompt_id"] for s in samples}) == [item["id"] for item in items]
        assert len(samples) == PROMPTS * 8
        assert len(shards) == PROMPTS // 2
    finally:
        pool.close()
