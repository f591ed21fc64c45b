"""The off-policy objectives on a hand-built batch, against their formulas written out here.

AReaL's decoupled PPO (Fu et al., 2025, "AReaL: a large-scale asynchronous reinforcement
learning system", eq. 5; ``areal/utils/functional.py: ppo_actor_loss_fn``): per token

    u = π_θ / π_prox,   w = π_prox / π_behaviour (no gradient),
    ℓ = w · max(−A·u, −A·clip(u, 1 − ε, 1 + ε))   (dual clip: min(ℓ/w, −A·c) when A < 0),

averaged over the response tokens. Naive PPO is the same surrogate on π_θ / π_behaviour
without any weight.
"""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.rl import AlgorithmConfig
from tideflow.rl._policy import actor_config, policy_loss

torch = pytest.importorskip("torch")


def _batch() -> dict[str, Any]:
    """Two responses (lengths 4 and 2) whose tokens cover every branch: ratios inside and
    outside the clip range, positive and negative advantages, weights above the truncation."""
    generator = torch.Generator().manual_seed(7)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float32)
    behaviour = -torch.rand((2, 4), generator=generator) * 2 - 0.1
    proximal = behaviour + torch.tensor([[0.9, -0.4, 0.05, 1.2], [-0.1, 0.3, 0.0, 0.0]])
    current = proximal + torch.tensor([[0.3, -0.5, 0.1, -0.02], [0.25, -0.15, 0.0, 0.0]])
    advantages = torch.tensor([[1.0, 1.0, 1.0, 1.0], [-2.0, -2.0, -2.0, -2.0]])
    return {
        "mask": mask,
        "behaviour": behaviour,
        "proximal": proximal,
        "current": current,
        "advantages": advantages,
    }


def _surrogate(log_prob: Any, anchor: Any, advantages: Any, eps: float, c: float) -> Any:
    ratio = torch.exp(log_prob - anchor)
    loss = torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1 - eps, 1 + eps))
    return torch.where(advantages < 0, torch.minimum(loss, -advantages * c), loss)


def _areal(b: dict[str, Any], log_prob: Any, *, eps: float, c: float, cap: float) -> Any:
    weights = torch.exp(b["proximal"] - b["behaviour"]).clamp(max=cap)
    loss = _surrogate(log_prob, b["proximal"], b["advantages"], eps, c) * weights
    return (loss * b["mask"]).sum() / b["mask"].sum()


def _ours(algorithm: AlgorithmConfig, b: dict[str, Any], log_prob: Any) -> Any:
    loss, _ = policy_loss(
        algorithm,
        actor_config(algorithm, samples_per_prompt=2),
        log_prob=log_prob,
        behaviour=b["behaviour"],
        proximal=b["proximal"],
        advantages=b["advantages"],
        mask=b["mask"],
    )
    return loss


@pytest.mark.parametrize("cap", [2.0, 1e6])
def test_the_decoupled_loss_and_its_gradient_are_areals_formula(cap: float) -> None:
    b = _batch()
    algorithm = AlgorithmConfig(off_policy="decoupled", rollout_is_threshold=cap)
    ours_input = b["current"].clone().requires_grad_(True)
    direct_input = b["current"].clone().requires_grad_(True)

    ours = _ours(algorithm, b, ours_input)
    direct = _areal(b, direct_input, eps=0.2, c=3.0, cap=cap)
    ours.backward()
    direct.backward()

    assert float(ours.detach()) == pytest.approx(float(direct.detach()), rel=1e-6)
    assert torch.allclose(ours_input.grad, direct_input.grad, atol=1e-7)
    assert float(direct_input.grad.abs().sum()) > 0  # some tokens are inside the clip range


def test_the_truncation_caps_the_behaviour_weights() -> None:
    b = _batch()
    capped = _ours(AlgorithmConfig(off_policy="decoupled"), b, b["current"])  # threshold 2
    uncapped = _ours(
        AlgorithmConfig(off_policy="decoupled", rollout_is_threshold=1e6), b, b["current"]
    )

    assert float(capped) != pytest.approx(float(uncapped), rel=1e-3)  # a weight exceeds 2


def test_naive_ppo_clips_on_the_behaviour_ratio_with_no_weights() -> None:
    b = _batch()
    algorithm = AlgorithmConfig(off_policy="bypass", bypass_loss="ppo_clip", rollout_is=None)
    log_prob = b["current"].clone().requires_grad_(True)

    loss, _ = policy_loss(
        algorithm,
        actor_config(algorithm, samples_per_prompt=2),
        log_prob=log_prob,
        behaviour=b["behaviour"],
        proximal=None,
        advantages=b["advantages"],
        mask=b["mask"],
    )
    direct = (_surrogate(b["current"], b["behaviour"], b["advantages"], 0.2, 3.0) * b["mask"]).sum()

    assert float(loss.detach()) == pytest.approx(float(direct / b["mask"].sum()), rel=1e-6)


def test_one_update_per_step_anchors_on_the_current_policy() -> None:
    """With no separate proximal log-probs (one update per batch) π_prox is π_θ itself: the
    ratio is 1 and the gradient is the weighted policy gradient w·A·∇log π_θ."""
    b = _batch()
    algorithm = AlgorithmConfig(off_policy="decoupled", rollout_is_threshold=1e6)
    log_prob = b["current"].clone().requires_grad_(True)
    loss, _ = policy_loss(
        algorithm,
        actor_config(algorithm, samples_per_prompt=2),
        log_prob=log_prob,
        behaviour=b["behaviour"],
        proximal=None,
        advantages=b["advantages"],
        mask=b["mask"],
    )
    loss.backward()

    weights = torch.exp(b["current"] - b["behaviour"])
    expected = -b["advantages"] * weights * b["mask"] / b["mask"].sum()
    assert torch.allclose(log_prob.grad, expected, atol=1e-6)
