"""``TrainerConfig.share_prompts``: each distinct prompt runs through the policy once and
its samples' responses against it — the log-probs and the gradient of a training step are
those of running every sample whole (in-process, no Ray)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from tideflow.rl._data import Sample
from tideflow.rl._policy import PolicyTrainer, batch_tensors
from tideflow.rl.config import AlgorithmConfig, ModelConfig, TrainerConfig


def _trainer(model: str, *, share: bool) -> PolicyTrainer:
    return PolicyTrainer(
        model=ModelConfig(path=model),
        algorithm=AlgorithmConfig(advantage="grpo", kl_coef=0.0, clip_ratio=0.2),
        trainer=TrainerConfig(lr=1e-3, share_prompts=share),
        temperature=0.7,
        samples_per_prompt=4,
        seed=0,
    )


def _samples(
    groups: int, per_group: int, seed: int = 0, lengths: tuple[int, ...] = (0, 1, 3, 5)
) -> list[Sample]:
    """Groups of samples sharing a prompt; prompts of different lengths (so the batch is
    left-padded) and responses of different lengths, some empty."""
    rng = random.Random(seed)
    samples = []
    for group in range(groups):
        prompt = [rng.randrange(3, 13) for _ in range(rng.randint(2, 7))] + [2]  # digits, "="
        for _ in range(per_group):
            response = [rng.randrange(3, 13) for _ in range(rng.choice(lengths))]
            samples.append(
                Sample(
                    batch=0,
                    prompt_id=group,
                    group=f"0:{group}",
                    prompt_token_ids=prompt,
                    response_token_ids=response,
                    behaviour_logprobs=[-1.5] * len(response),
                    version=0,
                    response_text="",
                    finish_reason="stop",
                    item={"id": group},
                    reward=rng.random(),
                )
            )
    rng.shuffle(samples)  # a group's samples need not sit side by side
    return samples


def _log_probs_and_grads(trainer: PolicyTrainer, samples: list[Sample]) -> tuple[Any, list[Any]]:
    data = batch_tensors(samples, pad_token_id=trainer.pad_token_id, temperature=0.7)
    mask = data.batch["response_mask"]
    trainer.model.zero_grad(set_to_none=True)
    log_probs, _ = trainer.log_probs(trainer.model, data)
    (log_probs * mask).sum().backward()
    grads = [p.grad.detach().clone() for p in trainer.model.parameters()]
    return log_probs.detach() * mask, grads


@pytest.mark.parametrize("lengths", [(0, 1, 3, 5), (0, 1)], ids=["long", "one-token"])
def test_shared_prompts_give_the_log_probs_and_gradients_of_whole_samples(
    digit_model: str, lengths: tuple[int, ...]
) -> None:
    torch.set_num_threads(1)
    samples = _samples(groups=5, per_group=4, lengths=lengths)
    whole_lp, whole_grads = _log_probs_and_grads(_trainer(digit_model, share=False), samples)
    shared = _trainer(digit_model, share=True)
    calls: list[int] = []
    shared.model.register_forward_pre_hook(
        lambda _m, _a, kwargs: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    shared_lp, shared_grads = _log_probs_and_grads(shared, samples)
    # the prompts ran once each (5 rows), then the 20 responses against them (but for
    # their last token, which predicts nothing: with one-token responses, nothing more)
    assert calls == ([5, 20] if max(lengths) > 1 else [5])
    assert torch.allclose(shared_lp, whole_lp, atol=1e-5), (shared_lp - whole_lp).abs().max()
    for whole, mine in zip(whole_grads, shared_grads, strict=True):  # float round-off only
        assert float((mine - whole).norm()) <= 1e-5 * float(whole.norm()) + 1e-7


def test_a_train_step_with_shared_prompts_moves_the_weights_the_same_way(
    digit_model: str,
) -> None:
    torch.set_num_threads(1)
    samples = _samples(groups=4, per_group=4, seed=3)
    after = []
    for share in (False, True):
        trainer = _trainer(digit_model, share=share)
        metrics = trainer.train_step(samples)
        assert trainer.version == 1 and metrics["train_s"] > 0
        after.append([p.detach().clone() for p in trainer.model.parameters()])
    # Adam divides each gradient by its own scale, so a gradient that is zero in exact
    # arithmetic (the keys' bias: softmax ignores a shift shared by every key) moves its
    # weight by round-off amplified to ~1e-6 (seen on a CPU with AVX-512). A real difference
    # between the two steps moves weights by ~lr = 1e-3: 1e-5 tells them apart.
    for whole, mine in zip(*after, strict=True):
        assert torch.allclose(mine, whole, atol=1e-5), float((mine - whole).abs().max())


def test_prompts_that_do_not_repeat_run_whole(digit_model: str) -> None:
    trainer = _trainer(digit_model, share=True)
    calls: list[int] = []
    trainer.model.register_forward_pre_hook(
        lambda _m, _a, kwargs: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    data = batch_tensors(_samples(groups=6, per_group=1), pad_token_id=0, temperature=0.7)
    with torch.no_grad():
        trainer.log_probs(trainer.model, data)
    assert calls == [6]  # one pass over the whole samples: sharing would not pay


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_share_prompts_must_be_a_bool(value: Any) -> None:
    from tideflow.rl import ConfigError

    with pytest.raises(ConfigError, match=r"TrainerConfig\.share_prompts must be true or false"):
        TrainerConfig(share_prompts=value)


def test_batch_tensors_left_pads_prompts_and_right_pads_responses() -> None:
    samples = _samples(groups=3, per_group=2, seed=5)
    data = batch_tensors(samples, pad_token_id=0, temperature=1.0).batch
    width = data["prompts"].shape[1]
    for row, sample in enumerate(samples):
        p, r = sample.prompt_token_ids, sample.response_token_ids
        assert data["prompts"][row, width - len(p) :].tolist() == p
        assert data["prompts"][row, : width - len(p)].eq(0).all()
        assert data["responses"][row, : len(r)].tolist() == r
        assert data["response_mask"][row].sum() == len(r)
        assert data["rollout_log_probs"][row, : len(r)].tolist() == [-1.5] * len(r)
        assert data["attention_mask"][row].sum() == len(p) + len(r)
        # the reward sits on the last response token (the first slot when there is none)
        last = max(len(r), 1) - 1
        assert data["token_level_scores"][row, last] == pytest.approx(sample.reward)
        assert data["token_level_scores"][row].abs().sum() == pytest.approx(sample.reward)
        if r:  # positions run on from the prompt's
            assert data["position_ids"][row, width : width + len(r)].tolist() == list(
                range(len(p), len(p) + len(r))
            )


def test_token_log_probs_are_log_softmax_at_the_labels() -> None:
    from tideflow.rl._policy import _token_log_probs

    logits = torch.randn(7, 5, 11, dtype=torch.float32)
    labels = torch.randint(0, 11, (7, 5))
    expected = torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(_token_log_probs(logits, labels), expected, atol=1e-6)
