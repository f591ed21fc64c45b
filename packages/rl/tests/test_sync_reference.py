"""buffer_size=1 with a fixed seed is exactly the plain synchronous loop: the same samples,
the same rewards and the same losses as a loop written here with torch and verl alone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tideflow.rl import batch_seed
from tideflow.rl.toy import reward

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _reference_losses(config: Any, steps: int) -> tuple[list[float], list[float]]:
    """generate → reward → GRPO advantages → PPO-clip on behaviour log-probs → AdamW step."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.trainer.ppo import core_algos
    from verl.utils.torch_functional import logprobs_from_logits
    from verl.workers.config.actor import ActorConfig

    from tideflow.streaming.llm import (
        GenerateRequest,
        SamplingParams,
        TransformersEngineConfig,
        create_engine,
    )
    from tideflow.streaming.llm.engines.transformers import TransformersEngine

    class KeepStop(TransformersEngine):
        keep_stop_token = True

    path, rollout = config.model.path, config.rollout
    lines = Path(config.data.path).read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines]
    tokenizer: Any = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.trainer.lr)
    actor = ActorConfig(strategy="fsdp", rollout_n=rollout.samples_per_prompt,
                        ppo_micro_batch_size_per_gpu=1, use_torch_compile=False)  # fmt: skip
    engine = create_engine(
        TransformersEngineConfig(model_source=path, max_batch_size=rollout.max_batch_size),
        target=KeepStop,
    )
    asyncio.run(engine.start())
    per = config.data.prompts_per_step
    losses, rewards = [], []
    for step in range(steps):
        batch = items[step * per : (step + 1) * per]
        sampling = SamplingParams(max_tokens=rollout.max_tokens, temperature=1.0,
                                  seed=batch_seed(config.seed, step), logprobs=True)  # fmt: skip
        prompts = [tokenizer(item["prompt"])["input_ids"] for item in batch]
        requests = [
            GenerateRequest(prompt_token_ids=p, sampling=sampling)
            for p in prompts
            for _ in range(rollout.samples_per_prompt)
        ]
        results = asyncio.run(engine.generate(requests))
        n = rollout.samples_per_prompt
        width = max(len(r.token_ids) for r in results)
        responses = torch.full((len(results), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(results), width))
        behaviour = torch.zeros((len(results), width))
        scores = torch.zeros((len(results), width))
        for row, result in enumerate(results):
            k = len(result.token_ids)
            responses[row, :k] = torch.tensor(result.token_ids)
            mask[row, :k] = 1
            behaviour[row, :k] = torch.tensor(result.logprobs)
            text = tokenizer.decode(result.token_ids, skip_special_tokens=True)
            scores[row, k - 1] = reward(batch[row // n], text)
        rewards.append(float(scores.sum(-1).mean()))
        prompt_ids = torch.tensor([p for p in prompts for _ in range(n)])  # all of one length
        input_ids = torch.cat([prompt_ids, responses], dim=1)
        attention = torch.cat([torch.ones_like(prompt_ids), mask.long()], dim=1)
        logits = model(input_ids=input_ids, attention_mask=attention,
                       position_ids=(attention.cumsum(1) - 1).clamp(min=0)).logits  # fmt: skip
        log_prob = logprobs_from_logits(logits[:, -width - 1 : -1].float(), responses)
        index = np.array([f"{step}:{i // n}" for i in range(len(results))], dtype=object)
        advantages, _ = core_algos.compute_grpo_outcome_advantage(scores, mask, index)
        loss, _ = core_algos.compute_policy_loss_vanilla(
            old_log_prob=behaviour, log_prob=log_prob, advantages=advantages,
            response_mask=mask, loss_agg_mode="token-mean", config=actor,
        )  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.trainer.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
        asyncio.run(engine.load_weights(list(model.named_parameters())))
    return losses, rewards


def test_buffer_size_1_reproduces_the_plain_synchronous_loop(sync_run) -> None:
    import torch

    result, config = sync_run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the trainer and rollout actors run one thread each
    try:
        losses, rewards = _reference_losses(config, len(result.steps))
    finally:
        torch.set_num_threads(threads)
    assert [s.reward_mean for s in result.steps] == pytest.approx(rewards, abs=1e-9)
    assert [s.loss for s in result.steps] == pytest.approx(losses, rel=1e-4, abs=1e-6)
