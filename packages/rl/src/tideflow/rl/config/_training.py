"""The training side: the algorithm (verl's advantages, losses, KL) and the trainer's
optimizer and resources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tideflow.rl.config._checks import _check, _check_gpu_reserved
from tideflow.rl.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class AlgorithmConfig:
    """Advantages, policy loss, KL and the off-policy correction, all from verl's registries."""

    advantage: str = "grpo"
    """An outcome advantage estimator of ``verl.trainer.ppo.core_algos`` (``grpo``, ``rloo``,
    ``reinforce_plus_plus``, ``opo``, ``gpg``, …); checked when the trainer starts."""
    norm_adv_by_std: bool = True
    """GRPO: divide by the group's standard deviation (``False``: Dr. GRPO)."""
    policy_loss: str = "vanilla"
    """A policy loss of verl's registry (``vanilla`` PPO-clip, ``gspo``, ``cispo``, …), used
    with ``off_policy="decoupled"`` (another than ``vanilla`` with ``bypass`` is an error:
    it would not take effect)."""
    loss_agg_mode: str = "token-mean"
    """verl's loss aggregation: ``token-mean``, ``seq-mean-token-mean``, …"""
    clip_ratio: float = 0.2
    """PPO clip ε."""
    clip_ratio_low: float | None = None
    """Lower clip ε (default ``clip_ratio``)."""
    clip_ratio_high: float | None = None
    """Upper clip ε (default ``clip_ratio``; larger for DAPO's clip-higher)."""
    clip_ratio_c: float = 3.0
    """Dual-clip bound for negative advantages (> 1)."""
    off_policy: Literal["bypass", "decoupled"] = "bypass"
    """How stale samples are corrected. ``bypass``: the ratio is anchored on the behaviour
    log-probs the rollout recorded (π_θ / π_behaviour, verl's bypass mode) and
    ``bypass_loss`` decides the loss. ``decoupled``: AReaL's decoupled PPO — the ratio is
    anchored on the trainer's own log-probs before the step's first update (the proximal
    policy π_prox), and each token's loss is weighted by the importance weight
    π_prox / π_behaviour, truncated at ``rollout_is_threshold`` (``rollout_is``; AReaL's
    ``behav_imp_weight_cap`` drops such tokens instead of truncating their weight)."""
    bypass_loss: Literal["ppo_clip", "reinforce"] = "ppo_clip"
    """In ``bypass``: PPO-clip on π_θ / π_behaviour, or REINFORCE with truncated importance
    weights π_θ / π_behaviour."""
    rollout_is: Literal["token", "sequence"] | None = "token"
    """Truncated importance weights per token or per sequence; ``None``: none."""
    rollout_is_threshold: float = 2.0
    """Upper bound of the importance weights (truncation)."""
    kl_coef: float = 0.0
    """Weight of the KL loss to the reference model (the initial policy); 0: no reference
    model is loaded and no KL loss is added."""
    kl_type: str = "low_var_kl"
    """verl's KL estimator: ``kl``/``k1``, ``abs``, ``mse``/``k2``, ``low_var_kl``/``k3``."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus."""

    def __post_init__(self) -> None:
        _check(self.clip_ratio > 0, "AlgorithmConfig.clip_ratio", "> 0", self.clip_ratio)
        for name in ("clip_ratio_low", "clip_ratio_high"):
            value = getattr(self, name)
            if value is not None:
                _check(value > 0, f"AlgorithmConfig.{name}", "> 0 or None", value)
        _check(self.clip_ratio_c > 1, "AlgorithmConfig.clip_ratio_c", "> 1", self.clip_ratio_c)
        modes = ("bypass", "decoupled")
        _check(self.off_policy in modes, "AlgorithmConfig.off_policy", f"one of {modes}",
               self.off_policy)  # fmt: skip
        if self.off_policy == "bypass" and self.policy_loss != "vanilla":
            message = (
                f"AlgorithmConfig.policy_loss {self.policy_loss!r} takes effect with "
                "off_policy='decoupled' only; with off_policy='bypass' the loss is "
                f"bypass_loss ({self.bypass_loss!r}): set off_policy='decoupled', or leave "
                "policy_loss at 'vanilla'"
            )
            raise ConfigError(message)
        losses = ("ppo_clip", "reinforce")
        _check(self.bypass_loss in losses, "AlgorithmConfig.bypass_loss", f"one of {losses}",
               self.bypass_loss)  # fmt: skip
        levels = ("token", "sequence", None)
        _check(self.rollout_is in levels, "AlgorithmConfig.rollout_is", f"one of {levels}",
               self.rollout_is)  # fmt: skip
        _check(self.rollout_is_threshold > 0, "AlgorithmConfig.rollout_is_threshold", "> 0",
               self.rollout_is_threshold)  # fmt: skip
        _check(self.kl_coef >= 0, "AlgorithmConfig.kl_coef", ">= 0", self.kl_coef)
        kls = ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")
        _check(self.kl_type in kls, "AlgorithmConfig.kl_type", f"one of {kls}", self.kl_type)
        aggs = (
            "token-mean",
            "token-sum",
            "seq-mean-token-sum",
            "seq-mean-token-mean",
            "seq-mean-token-sum-norm",
        )
        _check(self.loss_agg_mode in aggs, "AlgorithmConfig.loss_agg_mode", f"one of {aggs}",
               self.loss_agg_mode)  # fmt: skip
        if self.advantage == "gae":
            message = (
                "AlgorithmConfig.advantage 'gae' needs a critic, which this trainer does not "
                "train; use an outcome estimator (grpo, rloo, reinforce_plus_plus, opo, gpg, …)"
            )
            raise ConfigError(message)


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    """The trainer role: optimizer and the resources of its actor."""

    lr: float = 1e-5
    """AdamW learning rate (the toy demo uses 1e-3)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    grad_clip: float | None = 1.0
    """Clip the gradient norm to this (``None``: no clipping)."""
    ppo_epochs: int = 1
    """Passes over each batch."""
    mini_batches: int = 1
    """Optimizer steps per pass (the batch is split into this many mini-batches)."""
    device: str = "cpu"
    """Torch device of the policy (``cpu``, ``cuda``)."""
    num_cpus: float = 1.0
    """CPUs the trainer actor reserves (Ray)."""
    num_gpus: float = 0.0
    """GPUs the trainer actor reserves (Ray)."""
    num_threads: int | None = 1
    """Torch CPU threads in the trainer (``None``: torch's choice)."""
    share_prompts: bool = True
    """Run each distinct prompt of a batch through the policy once and every response
    against its keys and values, instead of every sample whole: the same log-probs and
    gradients with fewer tokens computed (a group's ``samples_per_prompt`` samples share
    their prompt). Used when a batch repeats its prompts and the model's cache is a plain
    per-layer key/value cache; otherwise each sample runs whole."""

    def __post_init__(self) -> None:
        _check(self.lr > 0, "TrainerConfig.lr", "> 0", self.lr)
        _check(self.weight_decay >= 0, "TrainerConfig.weight_decay", ">= 0", self.weight_decay)
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "TrainerConfig.betas",
            "two floats in [0, 1)",
            self.betas,
        )
        if self.grad_clip is not None:
            _check(self.grad_clip > 0, "TrainerConfig.grad_clip", "> 0 or None", self.grad_clip)
        _check(self.ppo_epochs >= 1, "TrainerConfig.ppo_epochs", ">= 1", self.ppo_epochs)
        _check(self.mini_batches >= 1, "TrainerConfig.mini_batches", ">= 1", self.mini_batches)
        _check(self.num_cpus >= 0, "TrainerConfig.num_cpus", ">= 0", self.num_cpus)
        _check(self.num_gpus >= 0, "TrainerConfig.num_gpus", ">= 0", self.num_gpus)
        if self.num_threads is not None:
            _check(self.num_threads >= 1, "TrainerConfig.num_threads", ">= 1", self.num_threads)
        _check_gpu_reserved(self.device, self.num_gpus, "TrainerConfig")
        _check(
            isinstance(self.share_prompts, bool),
            "TrainerConfig.share_prompts",
            "true or false",
            self.share_prompts,
        )
