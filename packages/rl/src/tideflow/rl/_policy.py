"""The trainer's work without Ray: batches to verl ``DataProto``, advantages, losses, steps.

Advantages, policy losses, KL estimators and truncated importance weights are verl's
(``core_algos`` registries and ``rollout_corr_helper``); this module only lays samples out
as tensors and calls them.
"""

from __future__ import annotations

import functools
import io
import pickle
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.rl.config import AlgorithmConfig, ModelConfig, TrainerConfig
from tideflow.rl.errors import ConfigError

__all__ = ["PolicyTrainer", "actor_config", "batch_tensors", "check_algorithm", "policy_loss"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.trainer")


_ADVANTAGE_INPUTS = frozenset({"token_level_rewards", "response_mask", "index", "config"})
"""What :meth:`PolicyTrainer.advantages` hands an estimator (outcome rewards, groups)."""

_UNRUNNABLE_LOSSES = {
    "bypass_mode": "is the loss of off_policy='bypass' itself",
    "dro": "needs verl's policy_loss.dro_beta, which AlgorithmConfig does not set",
}
"""verl policy losses this trainer cannot run, and why."""


def _missing_inputs(fn: Any) -> list[str]:
    """The required arguments of an advantage estimator that the trainer does not have
    (ReMax's greedy ``reward_baselines``, the optimal baselines' ``sum_pi_squared`` …)."""
    import inspect

    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in kinds and p.default is p.empty and p.name not in _ADVANTAGE_INPUTS
    ]


def check_algorithm(config: AlgorithmConfig) -> None:
    """Raise :class:`ConfigError` naming the valid choices when verl lacks a named piece, or
    has it but needs inputs this trainer does not compute."""
    from verl.trainer.ppo import core_algos

    registry = core_algos.ADV_ESTIMATOR_REGISTRY
    needs = {name: _missing_inputs(fn) for name, fn in registry.items()}
    advantages = sorted(name for name, missing in needs.items() if not missing)
    if config.advantage not in advantages:
        missing = needs.get(config.advantage)
        why = f"needs {missing}, which this trainer does not compute" if missing else "unknown"
        message = (
            f"AlgorithmConfig.advantage must be one of {advantages}; got "
            f"{config.advantage!r} ({why})"
        )
        raise ConfigError(message)
    losses = sorted(set(core_algos.POLICY_LOSS_REGISTRY) - set(_UNRUNNABLE_LOSSES))
    if config.policy_loss not in losses:
        reason = _UNRUNNABLE_LOSSES.get(config.policy_loss, "unknown")
        message = (
            f"AlgorithmConfig.policy_loss must be one of {losses}; got "
            f"{config.policy_loss!r} ({reason})"
        )
        raise ConfigError(message)


def batch_tensors(
    samples: Sequence[Any], *, pad_token_id: int, temperature: float
) -> Any:  # verl DataProto
    """Samples as a verl ``DataProto``: left-padded prompts, right-padded responses.

    Tensors: ``prompts``, ``responses``, ``input_ids``, ``attention_mask``,
    ``position_ids``, ``response_mask``, ``rollout_log_probs``, ``token_level_scores``,
    ``token_level_rewards`` (the reward on each response's last token). Non-tensors:
    ``uid`` (the group), ``prompt_id``, ``policy_version``.
    """
    import numpy as np
    import torch
    from verl import DataProto

    n = len(samples)
    prompt_lens = torch.tensor([len(s.prompt_token_ids) for s in samples], dtype=torch.long)
    response_lens = torch.tensor([len(s.response_token_ids) for s in samples], dtype=torch.long)
    prompt_len = int(prompt_lens.max())
    response_len = max(1, int(response_lens.max()))
    # one flat copy of every token, then scattered into place (no per-row tensors)
    prompt_mask = (
        torch.arange(prompt_len).unsqueeze(0) >= (prompt_len - prompt_lens).unsqueeze(1)
    ).long()
    response_mask = (torch.arange(response_len).unsqueeze(0) < response_lens.unsqueeze(1)).long()
    prompts = torch.full((n, prompt_len), pad_token_id, dtype=torch.long)
    prompts[prompt_mask.bool()] = torch.tensor(
        [t for s in samples for t in s.prompt_token_ids], dtype=torch.long
    )
    responses = torch.full((n, response_len), pad_token_id, dtype=torch.long)
    responses[response_mask.bool()] = torch.tensor(
        [t for s in samples for t in s.response_token_ids], dtype=torch.long
    )
    behaviour = torch.zeros((n, response_len), dtype=torch.float32)
    behaviour[response_mask.bool()] = torch.tensor(
        [x for s in samples for x in s.behaviour_logprobs], dtype=torch.float32
    )
    scores = torch.zeros((n, response_len), dtype=torch.float32)
    scores[torch.arange(n), (response_lens - 1).clamp(min=0)] = torch.tensor(
        [float(s.reward or 0.0) for s in samples], dtype=torch.float32
    )
    attention_mask = torch.cat([prompt_mask, response_mask], dim=1)
    position_ids = torch.clamp(torch.cumsum(attention_mask, dim=1) - 1, min=0)
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "response_mask": response_mask.float(),
            "rollout_log_probs": behaviour,
            "token_level_scores": scores,
            "token_level_rewards": scores.clone(),
        },
        non_tensors={
            "uid": np.array([s.group for s in samples], dtype=object),
            "prompt_id": np.array([s.prompt_id for s in samples], dtype=np.int64),
            "policy_version": np.array([s.version for s in samples], dtype=np.int64),
        },
        meta_info={"temperature": temperature},
    )


def policy_loss(
    algorithm: AlgorithmConfig,
    actor_config: Any,
    *,
    log_prob: Any,
    behaviour: Any,
    proximal: Any | None,
    advantages: Any,
    mask: Any,
) -> tuple[Any, dict[str, float]]:
    """The policy loss of a mini-batch, from verl's registries; its anchor follows
    ``algorithm.off_policy``.

    ``bypass``: verl's ``bypass_mode`` loss, whose ratio is π_θ / π_behaviour (PPO-clip or
    REINFORCE with truncated weights, ``bypass_loss``). ``decoupled``: AReaL's decoupled PPO
    (Fu et al., 2025) — the clipped surrogate of ``algorithm.policy_loss`` on the ratio
    π_θ / π_prox, where π_prox (``proximal``) is the trainer's own policy before this step's
    first update, each token's loss multiplied by the behaviour importance weight
    π_prox / π_behaviour (detached), truncated at ``rollout_is_threshold`` by verl's
    ``compute_rollout_correction_weights`` (``rollout_is=None``: no weights).
    ``proximal=None`` means the step makes one update only, so π_prox is π_θ's own value.
    """
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_weights

    metrics: dict[str, float] = {}
    if algorithm.off_policy == "bypass":  # the ratio is anchored on the behaviour log-probs
        loss, pg_metrics = core_algos.get_policy_loss_fn("bypass_mode")(
            old_log_prob=behaviour,
            log_prob=log_prob,
            advantages=advantages,
            response_mask=mask,
            loss_agg_mode=algorithm.loss_agg_mode,
            config=actor_config,
        )
        return loss, {**metrics, **pg_metrics}
    # decoupled: anchored on π_prox, weighted by truncated π_prox / π_behaviour
    prox = log_prob.detach() if proximal is None else proximal.detach()
    weights = None
    if algorithm.rollout_is is not None:
        weights, is_metrics = compute_rollout_correction_weights(
            log_ratio=prox - behaviour,
            response_mask=mask,
            rollout_is=algorithm.rollout_is,
            rollout_is_threshold=algorithm.rollout_is_threshold,
        )
        metrics.update({f"rollout_corr/{k}": v for k, v in is_metrics.items()})
    loss, pg_metrics = core_algos.get_policy_loss_fn(algorithm.policy_loss)(
        old_log_prob=prox,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode=algorithm.loss_agg_mode,
        config=actor_config,
        rollout_is_weights=weights,
    )
    return loss, {**metrics, **pg_metrics}


def actor_config(algorithm: AlgorithmConfig, *, samples_per_prompt: int) -> Any:
    """verl's ``ActorConfig`` for ``algorithm``: clipping, aggregation, loss, correction."""
    from verl.trainer.config.algorithm import RolloutCorrectionConfig
    from verl.workers.config.actor import ActorConfig, PolicyLossConfig

    low, high = algorithm.clip_ratio_low, algorithm.clip_ratio_high
    correction = RolloutCorrectionConfig(
        rollout_is=algorithm.rollout_is,
        rollout_is_threshold=algorithm.rollout_is_threshold,
        loss_type=algorithm.bypass_loss,
        bypass_mode=algorithm.off_policy == "bypass",
    )
    return ActorConfig(
        strategy="fsdp",
        rollout_n=samples_per_prompt,
        ppo_micro_batch_size_per_gpu=1,
        use_torch_compile=False,
        clip_ratio=algorithm.clip_ratio,
        clip_ratio_low=low if low is not None else algorithm.clip_ratio,
        clip_ratio_high=high if high is not None else algorithm.clip_ratio,
        clip_ratio_c=algorithm.clip_ratio_c,
        loss_agg_mode=algorithm.loss_agg_mode,
        policy_loss=PolicyLossConfig(
            loss_mode=algorithm.policy_loss, rollout_correction=correction
        ),
    )


def _token_log_probs(logits: Any, labels: Any) -> Any:
    """``log_softmax(logits)[label]`` of each position: verl's ``logprobs_from_logits``
    where it has a fused kernel (flash-attn's cross-entropy, on a GPU); otherwise
    ``logit[label] − logsumexp(logits)`` in slices of about 16 M logits (verl's CPU
    fallback takes one row at a time: one call per sample, slow on small models)."""
    import torch
    from verl.utils import torch_functional as verl_F

    if getattr(verl_F, "FLAH_ATTN_CROSS_ENTROPY_LOSS_AVAILABLE", False):
        return verl_F.logprobs_from_logits(logits, labels)
    picked = torch.gather(logits, dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
    per_row = max(1, logits[0].numel())
    rows = max(1, (1 << 24) // per_row)
    lse = torch.cat([torch.logsumexp(part, dim=-1) for part in logits.split(rows)])
    return picked - lse


class _CacheNotShareable(Exception):
    """The model's cache cannot be gathered row by row (see :func:`_shared_prompt_logits`)."""


def _shared_prompt_logits(model: Any, batch: Any, device: str) -> Any:
    """The logits that predict each response token, computed with every distinct prompt
    run through ``model`` once: its keys and values are gathered for each of its samples,
    and the responses run against them (gradients flow back through the gather into the
    prompt's single pass). The same values as running each sample whole, in fewer tokens:
    GRPO's ``samples_per_prompt`` samples share one prompt.

    ``None`` when it would not pay (fewer than a quarter of the rows repeat a prompt);
    :class:`_CacheNotShareable` when the model's cache is not a plain per-layer key/value
    cache (sliding-window, hybrid or recurrent layers). The caller then runs each sample
    whole.
    """
    import torch
    from transformers import DynamicCache

    prompts = batch["prompts"].to(device)
    rows, width = prompts.shape
    unique, inverse = torch.unique(prompts, dim=0, return_inverse=True)
    if len(unique) > 0.75 * rows or getattr(model, "is_gradient_checkpointing", False):
        return None
    # one row of the batch per distinct prompt: its mask and positions come with it
    first = torch.full((len(unique),), rows, dtype=torch.long, device=device)
    first = first.scatter_reduce(0, inverse, torch.arange(rows, device=device), reduce="amin")
    mask = batch["attention_mask"].to(device)
    positions = batch["position_ids"].to(device)
    head = model(
        input_ids=prompts[first],
        attention_mask=mask[first, :width],
        position_ids=positions[first, :width],
        use_cache=True,
    )
    layers = getattr(head.past_key_values, "layers", None)
    if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        raise _CacheNotShareable(type(model).__name__)
    # The prompt's last position predicts the first response token, each response position
    # the next one; the last response token predicts nothing that is scored, so it is not
    # run (causal attention: the positions before it never see it).
    first_logits = head.logits[inverse, -1:, :]
    responses = batch["responses"].to(device)
    if responses.shape[1] == 1:
        return first_logits
    cache = DynamicCache()
    for index, layer in enumerate(layers):
        cache.update(layer.keys[inverse], layer.values[inverse], index)
    tail = model(
        input_ids=responses[:, :-1],
        attention_mask=mask[:, :-1],
        position_ids=positions[:, width:-1],
        past_key_values=cache,
        use_cache=True,
    )
    return torch.cat([first_logits, tail.logits], dim=1)


class PolicyTrainer:
    """The policy, an optional frozen reference, AdamW, and one step per batch."""

    def __init__(
        self,
        *,
        model: ModelConfig,
        algorithm: AlgorithmConfig,
        trainer: TrainerConfig,
        temperature: float,
        samples_per_prompt: int,
        seed: int,
    ) -> None:
        import torch
        import transformers
        from verl.trainer.config.algorithm import AlgoConfig

        check_algorithm(algorithm)
        transformers.utils.logging.disable_progress_bar()
        if trainer.num_threads:
            torch.set_num_threads(trainer.num_threads)
        random.seed(seed)
        torch.manual_seed(seed)
        self.algorithm = algorithm
        self.config = trainer
        self.temperature = temperature
        self.device = trainer.device
        dtype = getattr(torch, model.dtype)
        auto: Any = transformers.AutoModelForCausalLM
        self.model = auto.from_pretrained(model.path, dtype=dtype).to(self.device)
        self.model.train()
        self.reference = None
        if algorithm.kl_coef > 0:
            self.reference = auto.from_pretrained(model.path, dtype=dtype).to(self.device).eval()
            self.reference.requires_grad_(False)
        tokenizer = transformers.AutoTokenizer.from_pretrained(model.path)
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=trainer.lr,
            betas=(trainer.betas[0], trainer.betas[1]),
            weight_decay=trainer.weight_decay,
            # one kernel for all parameters (the same update; torch has it for CPU and CUDA)
            fused=torch.device(self.device).type in ("cpu", "cuda"),
        )
        self.actor_config = actor_config(algorithm, samples_per_prompt=samples_per_prompt)
        self.algo_config = AlgoConfig(
            adv_estimator=algorithm.advantage,
            norm_adv_by_std_in_grpo=algorithm.norm_adv_by_std,
        )
        self.version = 0
        """Optimizer steps applied (the policy version of the current weights)."""
        self.trained: list[list[int]] = []
        """The prompt ids of each trained step, in order (the exactly-once ledger)."""
        self._run_whole: set[int] = set()
        """Models (by ``id``) whose cache cannot be shared between a prompt's samples."""

    # -- one step --------------------------------------------------------------------------
    def log_probs(self, model: Any, data: Any) -> Any:
        """Log-probability of each response token under ``model`` (logits ÷ temperature),
        and the logits: ``(log_probs, logits)``, one row per sample."""
        batch = data.batch
        responses = batch["responses"].to(self.device)
        logits = None
        if self.config.share_prompts and id(model) not in self._run_whole:
            try:
                logits = _shared_prompt_logits(model, batch, self.device)
            except _CacheNotShareable as refused:
                _log().info("share_prompts_off", model=str(refused), reason="cache layout")
                self._run_whole.add(id(model))
        if logits is None:
            # the last token predicts nothing scored: it is not run (see above)
            width = responses.shape[1]
            out = model(
                input_ids=batch["input_ids"][:, :-1].to(self.device),
                attention_mask=batch["attention_mask"][:, :-1].to(self.device),
                position_ids=batch["position_ids"][:, :-1].to(self.device),
                use_cache=False,
            )
            logits = out.logits[:, -width:, :]
        logits = logits.float() / self.temperature
        return _token_log_probs(logits, responses), logits

    def advantages(self, data: Any) -> None:
        """verl's advantage estimator over the batch (groups by ``uid``), in place."""
        from verl.trainer.ppo import core_algos

        fn = core_algos.get_adv_estimator_fn(self.algorithm.advantage)
        kwargs: dict[str, Any] = {
            "token_level_rewards": data.batch["token_level_rewards"],
            "response_mask": data.batch["response_mask"],
            "index": data.non_tensor_batch["uid"],
            "config": self.algo_config,
        }
        if self.algorithm.advantage in ("grpo", "grpo_vectorized"):
            kwargs["norm_adv_by_std_in_grpo"] = self.algorithm.norm_adv_by_std
        advantages, returns = fn(**kwargs)
        data.batch["advantages"] = advantages
        data.batch["returns"] = returns

    def train_step(self, samples: Sequence[Any]) -> dict[str, Any]:
        """One training step on a batch: advantages, ``ppo_epochs × mini_batches`` updates."""
        import torch

        started = time.perf_counter()
        data = batch_tensors(samples, pad_token_id=self.pad_token_id, temperature=self.temperature)
        self.advantages(data)
        if self.reference is not None:
            with torch.no_grad():
                data.batch["ref_log_prob"] = self.log_probs(self.reference, data)[0].cpu()
        several = self.config.ppo_epochs * self.config.mini_batches > 1
        if self.algorithm.off_policy == "decoupled" and several:
            with torch.no_grad():  # π_old: the weights before this step's first update
                data.batch["old_log_probs"] = self.log_probs(self.model, data)[0].cpu()
        sums: dict[str, float] = {}
        updates = 0
        for _ in range(self.config.ppo_epochs):
            for part in data.chunk(self.config.mini_batches):
                for key, value in self._update(part).items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                updates += 1
        self.version += 1
        self.trained.append(sorted({int(s.prompt_id) for s in samples}))
        out: dict[str, Any] = {key: value / updates for key, value in sums.items()}
        out["train_s"] = time.perf_counter() - started
        out["version"] = self.version
        return out

    def _policy_loss(self, batch: Any, log_prob: Any, mask: Any) -> tuple[Any, dict[str, float]]:
        """verl's policy loss on a mini-batch; see :func:`policy_loss`."""
        old = batch["old_log_probs"].to(self.device) if "old_log_probs" in batch else None
        return policy_loss(
            self.algorithm,
            self.actor_config,
            log_prob=log_prob,
            behaviour=batch["rollout_log_probs"].to(self.device),
            proximal=old,
            advantages=batch["advantages"].to(self.device),
            mask=mask,
        )

    def _update(self, part: Any) -> dict[str, float]:
        """One optimizer step on a mini-batch."""
        import torch
        import verl.utils.torch_functional as verl_F
        from verl.trainer.ppo import core_algos

        algorithm = self.algorithm
        batch = part.batch
        mask = batch["response_mask"].to(self.device)
        log_prob, logits = self.log_probs(self.model, part)
        pg_loss, metrics = self._policy_loss(batch, log_prob, mask)
        loss = pg_loss
        if self.reference is not None:
            kl = core_algos.kl_penalty(
                log_prob, batch["ref_log_prob"].to(self.device), algorithm.kl_type
            )
            kl_loss = core_algos.agg_loss(
                loss_mat=kl, loss_mask=mask, loss_agg_mode=algorithm.loss_agg_mode
            )
            metrics["kl"] = float(kl_loss.detach())
            loss = loss + algorithm.kl_coef * kl_loss
        if algorithm.entropy_coef:
            entropy = core_algos.compute_entropy_loss(
                logits, mask, loss_agg_mode=algorithm.loss_agg_mode
            )
            metrics["entropy"] = float(entropy.detach())
            loss = loss - algorithm.entropy_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            metrics["grad_norm"] = float(norm)
        self.optimizer.step()
        behaviour = batch["rollout_log_probs"].to(self.device)
        metrics["loss"] = float(loss.detach())
        metrics["pg_loss"] = float(pg_loss.detach())
        metrics["behaviour_kl"] = float(verl_F.masked_mean(behaviour - log_prob.detach(), mask))
        return metrics

    # -- weights and state -----------------------------------------------------------------
    def named_weights(self) -> Iterator[tuple[str, Any]]:
        """The parameters the rollout engines load, by name (detached, on the CPU)."""
        for name, parameter in self.model.named_parameters():
            yield name, parameter.detach().cpu()

    def state(self) -> dict[str, bytes | dict[str, Any]]:
        """What a checkpoint holds of the trainer: weights, optimizer, RNG, counters."""
        import numpy as np
        import torch

        def dumps(value: Any) -> bytes:
            buffer = io.BytesIO()
            torch.save(value, buffer)
            return buffer.getvalue()

        rng = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        return {
            "model": dumps(self.model.state_dict()),
            "optimizer": dumps(self.optimizer.state_dict()),
            "rng": pickle.dumps(rng),
            "trainer": {"version": self.version, "trained": self.trained},
        }

    def load_state(self, states: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        import numpy as np
        import torch

        def loads(value: bytes) -> Any:
            return torch.load(io.BytesIO(value), map_location=self.device, weights_only=False)

        self.model.load_state_dict(loads(states["model"]))
        self.optimizer.load_state_dict(loads(states["optimizer"]))
        rng = pickle.loads(states["rng"])  # our own checkpoint's bytes
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        self.version = int(states["trainer"]["version"])
        self.trained = [list(ids) for ids in states["trainer"]["trained"]]
        _log().info("trainer_restored", version=self.version)
