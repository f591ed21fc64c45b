"""What a user describes: one frozen dataclass per role, and :class:`RLConfig` over them.

Every field has a docstring and is checked in ``__post_init__``; :func:`load_config` reads
the same structure from YAML (or a mapping), rejecting unknown fields and wrong types with
the field's dotted path, what was expected and what was seen.

.. code-block:: yaml

    model: {path: /models/tiny}
    data: {path: prompts.jsonl, prompts_per_step: 8}
    rollout: {samples_per_prompt: 4, max_tokens: 16, temperature: 1.0}
    reward: {function: my_rewards:exact_match}
    algorithm: {advantage: grpo, kl_coef: 0.0}
    trainer: {lr: 1.0e-4}
    buffer_size: 2
    total_steps: 100
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tideflow.rl.errors import ConfigError

__all__ = [
    "AlgorithmConfig",
    "CheckpointConfig",
    "DataConfig",
    "ModelConfig",
    "OutputConfig",
    "RLConfig",
    "RewardConfig",
    "RewardModelConfig",
    "RolloutAutoscaleConfig",
    "RolloutConfig",
    "SyncConfig",
    "TrainerConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]


def _check(condition: bool, where: str, expected: str, got: Any) -> None:
    if not condition:
        raise ConfigError(f"{where} must be {expected}; got {got!r}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The policy: a local Hugging Face model directory (weights, config, tokenizer)."""

    path: str
    """Directory of the initial policy; the rollout engines and the trainer load it."""
    dtype: str = "float32"
    """Torch dtype of the trainer's weights (``float32``, ``bfloat16``)."""

    def __post_init__(self) -> None:
        _check(bool(self.path), "ModelConfig.path", "a non-empty path", self.path)
        allowed = ("float32", "bfloat16", "float16")
        _check(self.dtype in allowed, "ModelConfig.dtype", f"one of {allowed}", self.dtype)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The prompts and how many go into one training step."""

    path: str | None = None
    """A JSONL file: one object per line with ``prompt`` (text) or ``prompt_token_ids``, and
    any fields the reward function reads (``answer`` …). ``None``: the toy digit task."""
    num_prompts: int = 256
    """Prompts generated for the toy task (ignored with ``path``)."""
    prompts_per_step: int = 8
    """Prompts per batch; each batch has ``prompts_per_step × samples_per_prompt`` samples."""
    shuffle: bool = True
    """Shuffle the prompts each epoch (seeded by ``RLConfig.seed``)."""

    def __post_init__(self) -> None:
        _check(self.num_prompts >= 1, "DataConfig.num_prompts", ">= 1", self.num_prompts)
        _check(
            self.prompts_per_step >= 1, "DataConfig.prompts_per_step", ">= 1", self.prompts_per_step
        )


@dataclass(frozen=True, kw_only=True)
class RolloutAutoscaleConfig:
    """An elastic rollout pool, sized by :class:`tideflow.core.autoscaler.PoolScaler`.

    The pool grows while the trainer waits for samples (rollout is the bottleneck) and
    shrinks while the buffer stays full (rollout is ahead), deciding on a sliding window of
    samples and scaling at most once per ``debounce_s``, like the streaming pools.
    """

    min_workers: int = 1
    """Fewest rollout workers (>= 1)."""
    max_workers: int = 2
    """Most rollout workers (>= ``min_workers``)."""
    window_s: float = 5.0
    """Seconds of samples a decision looks at: up when, all through it, every worker was busy
    and the trainer waited for samples; down when at most half the workers were busy all
    through it and the trainer never waited."""
    debounce_s: float = 1.0
    """After a scale the pool does not scale again for this long (>= 0)."""
    sample_interval_s: float = 0.25
    """Seconds between two samples of the pool (> 0, < ``window_s``)."""
    trainer_wait_share: float = 0.25
    """Rollout counts as behind in a sampling interval when the trainer spent at least this
    share of it waiting for samples (0 < x <= 1)."""

    def __post_init__(self) -> None:
        where = "RolloutConfig.autoscale"
        _check(0 < self.trainer_wait_share <= 1, f"{where}.trainer_wait_share", "in (0, 1]",
               self.trainer_wait_share)  # fmt: skip
        _check(self.min_workers >= 1, f"{where}.min_workers", ">= 1", self.min_workers)
        _check(
            self.max_workers >= self.min_workers,
            f"{where}.max_workers",
            f">= min_workers ({self.min_workers})",
            self.max_workers,
        )
        _check(self.window_s > 0, f"{where}.window_s", "> 0", self.window_s)
        _check(self.debounce_s >= 0, f"{where}.debounce_s", ">= 0", self.debounce_s)
        _check(
            0 < self.sample_interval_s < self.window_s,
            f"{where}.sample_interval_s",
            f"> 0 and < window_s ({self.window_s})",
            self.sample_interval_s,
        )


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """Rollout workers: a generation engine each, ``samples_per_prompt`` samples per prompt."""

    engine: Literal["transformers", "vllm"] = "transformers"
    """``transformers`` (CPU or GPU, in the worker's process) or ``vllm`` (GPU)."""
    num_workers: int = 1
    """Rollout workers: the fixed pool's size; with ``autoscale``, the elastic pool's size at
    the start (within ``[min_workers, max_workers]``)."""
    autoscale: RolloutAutoscaleConfig | None = None
    """Make the pool elastic (``None``: a fixed pool of ``num_workers``)."""
    prompts_per_request: int | None = None
    """Prompts per work request (shard) a worker takes; any free worker takes the next one, so
    a pool change takes effect at once. ``None``: a batch is cut into one request per worker
    of the largest pool (``num_workers``, or ``autoscale.max_workers``)."""
    max_restarts: int = 3
    """Rollout workers that may die and be replaced in a run (their requests are generated
    again by a live worker) before the run fails."""
    partial_rollout: bool = False
    """Generate in segments of ``segment_tokens``; between two segments a worker loads newer
    published weights, so a long generation that spans a weight update continues with the
    new weights (each token keeps the version that produced it)."""
    segment_tokens: int = 8
    """Tokens per segment with ``partial_rollout``."""
    samples_per_prompt: int = 4
    """Samples generated per prompt (the group of GRPO/RLOO advantages)."""
    max_tokens: int = 16
    """Most tokens generated per sample."""
    temperature: float = 1.0
    """Sampling temperature (> 0); the trainer divides its logits by it too."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]."""
    top_k: int = 0
    """Sample among the ``top_k`` likeliest tokens; 0: no limit."""
    device: str = "cpu"
    """Torch device of a ``transformers`` engine (``cpu``, ``cuda``)."""
    max_batch_size: int = 256
    """Most requests in one ``generate`` call of a ``transformers`` engine."""
    num_cpus: float = 1.0
    """CPUs each worker reserves (Ray)."""
    num_gpus: float = 0.0
    """GPUs each worker reserves (Ray); a ``vllm`` worker needs 1."""
    num_threads: int | None = 1
    """Torch CPU threads in a worker (``None``: torch's choice)."""
    engine_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Passed to the engine as is (vLLM: ``gpu_memory_utilization``, ``enforce_eager`` …)."""

    def __post_init__(self) -> None:
        engines = ("transformers", "vllm")
        _check(self.engine in engines, "RolloutConfig.engine", f"one of {engines}", self.engine)
        for name in (
            "num_workers", "samples_per_prompt", "max_tokens", "max_batch_size", "segment_tokens",
        ):  # fmt: skip
            value = getattr(self, name)
            _check(value >= 1, f"RolloutConfig.{name}", ">= 1", value)
        if self.prompts_per_request is not None:
            _check(self.prompts_per_request >= 1, "RolloutConfig.prompts_per_request",
                   ">= 1 or None", self.prompts_per_request)  # fmt: skip
        _check(self.max_restarts >= 0, "RolloutConfig.max_restarts", ">= 0", self.max_restarts)
        scale = self.autoscale
        if scale is not None:
            _check(
                scale.min_workers <= self.num_workers <= scale.max_workers,
                "RolloutConfig.num_workers",
                f"within autoscale's [min_workers, max_workers] = [{scale.min_workers}, "
                f"{scale.max_workers}] (the elastic pool starts at num_workers)",
                self.num_workers,
            )
        _check(self.temperature > 0, "RolloutConfig.temperature", "> 0", self.temperature)
        _check(0 < self.top_p <= 1, "RolloutConfig.top_p", "in (0, 1]", self.top_p)
        _check(self.top_k >= 0, "RolloutConfig.top_k", ">= 0", self.top_k)
        _check(self.num_cpus >= 0, "RolloutConfig.num_cpus", ">= 0", self.num_cpus)
        _check(self.num_gpus >= 0, "RolloutConfig.num_gpus", ">= 0", self.num_gpus)
        if self.num_threads is not None:
            _check(self.num_threads >= 1, "RolloutConfig.num_threads", ">= 1", self.num_threads)

    @property
    def largest_pool(self) -> int:
        """The most rollout workers the run may have at once (``autoscale.max_workers``, or
        ``num_workers``): what to reserve CPUs and GPUs for."""
        return self.autoscale.max_workers if self.autoscale else self.num_workers


_TOY_REWARD = "tideflow.rl.toy:reward"


def _template_fields(template: str) -> set[str]:
    """The field names of a ``str.format`` template; none when it does not parse."""
    import string

    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError:
        return set()


@dataclass(frozen=True, kw_only=True)
class RewardModelConfig:
    """A reward model served through :mod:`tideflow.streaming.llm`: a sequence classifier,
    or a generative judge (a local model, or any OpenAI-protocol server)."""

    kind: Literal["classifier", "judge"] = "classifier"
    """``classifier``: a ``*ForSequenceClassification`` model; the score is the logit of
    ``label``. ``judge``: a generating model answers ``template``; the first number of its
    answer is the score."""
    path: str
    """A local model directory; for a judge behind ``base_url``, the served model's name."""
    base_url: str | None = None
    """A judge's OpenAI-protocol endpoint (``http://host:port/v1``); ``None``: the judge runs
    locally through the ``transformers`` engine."""
    template: str | None = None
    """What is scored, with ``{prompt}`` and ``{response}`` (the item's ``prompt`` text and
    the response text). Default: ``"{prompt} {response}"`` for a classifier; for a judge,
    a prompt asking for a score between 0 and 1."""
    label: int = 0
    """Classifier: which logit is the score."""
    max_tokens: int = 8
    """Judge: most tokens of an answer."""
    device: str = "cpu"
    """Torch device of a local model (``cpu``, ``cuda``)."""
    dtype: str = "float32"
    """Torch dtype of a local model's weights."""
    num_threads: int | None = 1
    """Torch CPU threads in each reward worker (``None``: torch's choice)."""
    stand_in_latency_s: float = 0.0
    """Seconds slept per reward-model call on top of the model's own time: a stand-in for a
    bigger or remote reward model, for benchmarks. Keep 0 in real use."""

    def __post_init__(self) -> None:
        kinds = ("classifier", "judge")
        _check(self.kind in kinds, "RewardModelConfig.kind", f"one of {kinds}", self.kind)
        _check(bool(self.path), "RewardModelConfig.path", "a model directory or name", self.path)
        if self.base_url is not None:
            _check(self.kind == "judge", "RewardModelConfig.base_url", "None for a classifier "
                   "(only a judge is reached over HTTP)", self.base_url)  # fmt: skip
            _check(self.base_url.startswith(("http://", "https://")), "RewardModelConfig.base_url",
                   "an http(s):// URL", self.base_url)  # fmt: skip
        else:
            _check(Path(self.path).is_dir(), "RewardModelConfig.path", "an existing model "
                   "directory", self.path)  # fmt: skip
        if self.template is not None:
            _check("response" in _template_fields(self.template), "RewardModelConfig.template",
                   "a format string with a {response} field", self.template)  # fmt: skip
        _check(self.label >= 0, "RewardModelConfig.label", ">= 0", self.label)
        _check(self.max_tokens >= 1, "RewardModelConfig.max_tokens", ">= 1", self.max_tokens)
        if self.num_threads is not None:
            _check(self.num_threads >= 1, "RewardModelConfig.num_threads", ">= 1",
                   self.num_threads)  # fmt: skip
        _check(self.stand_in_latency_s >= 0, "RewardModelConfig.stand_in_latency_s", ">= 0",
               self.stand_in_latency_s)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """Reward workers, off the rollout's critical path: a Python rule function, or a reward
    model (``model``) served in its own pool of workers."""

    function: str | None = _TOY_REWARD
    """``"module:function"``, called as ``function(prompt_item, response_text) -> float``.
    With ``model`` set, leave it at its default or ``None`` (it is then ``None``)."""
    model: RewardModelConfig | None = None
    """A reward model instead of a function (``None``: the function scores)."""
    num_workers: int = 1
    """Reward workers; a batch is scored by one of them, round-robin."""
    num_cpus: float = 0.5
    """CPUs each reward worker reserves (Ray)."""
    batch_size: int = 64
    """Reward model: most samples per call into the model (a batch is scored in calls of
    this many)."""
    inline: bool = False
    """``True``: rollout waits for a batch's scores before generating the next one (the
    reward on the critical path, for comparison); ``False``: scoring overlaps generation."""

    def __post_init__(self) -> None:
        if self.model is not None:
            _check(isinstance(self.model, RewardModelConfig), "RewardConfig.model",
                   "a RewardModelConfig", self.model)  # fmt: skip
            if self.function == _TOY_REWARD:
                object.__setattr__(self, "function", None)  # the default yields to the model
            if self.function is not None:
                message = (
                    "RewardConfig: set either function or model, not both; got function "
                    f"{self.function!r} and a {self.model.kind} model at {self.model.path!r}"
                )
                raise ConfigError(message)
        else:
            _check(self.function is not None, "RewardConfig.function", "'module:function' "
                   "when no model is set", self.function)  # fmt: skip
            module, _, name = str(self.function).partition(":")
            _check(bool(module and name), "RewardConfig.function", "'module:function'",
                   self.function)  # fmt: skip
        _check(self.num_workers >= 1, "RewardConfig.num_workers", ">= 1", self.num_workers)
        _check(self.num_cpus >= 0, "RewardConfig.num_cpus", ">= 0", self.num_cpus)
        _check(self.batch_size >= 1, "RewardConfig.batch_size", ">= 1", self.batch_size)


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
    with ``off_policy="decoupled"``."""
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
        _check(self.clip_ratio_c > 1, "AlgorithmConfig.clip_ratio_c", "> 1", self.clip_ratio_c)
        modes = ("bypass", "decoupled")
        _check(self.off_policy in modes, "AlgorithmConfig.off_policy", f"one of {modes}",
               self.off_policy)  # fmt: skip
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


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    """How the trainer's weights reach the rollout workers."""

    chunk_bytes: int = 4 << 20
    """Most bytes per published chunk (a tensor larger than this is a chunk of its own)."""
    backend: Literal["object_store", "nccl"] = "object_store"
    """``object_store``: chunks through Ray's object store (CPU and GPU); ``nccl``: broadcast
    from the trainer's GPU to the rollout GPUs through ``ray.util.collective``."""

    def __post_init__(self) -> None:
        _check(self.chunk_bytes >= 1, "SyncConfig.chunk_bytes", ">= 1", self.chunk_bytes)
        backends = ("object_store", "nccl")
        _check(self.backend in backends, "SyncConfig.backend", f"one of {backends}", self.backend)


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    """Checkpoints through :class:`tideflow.core.checkpoint.CheckpointStore`."""

    uri: str | None = None
    """Where (local path, ``file://``, ``s3://`` …); ``None``: no checkpoints."""
    every_steps: int = 10
    """A checkpoint after every this many training steps (and after the last one)."""
    retain: int = 2
    """Complete checkpoints kept."""
    resume: bool = True
    """Resume from the latest checkpoint under ``uri`` when there is one."""

    def __post_init__(self) -> None:
        _check(self.every_steps >= 1, "CheckpointConfig.every_steps", ">= 1", self.every_steps)
        _check(self.retain >= 1, "CheckpointConfig.retain", ">= 1", self.retain)


@dataclass(frozen=True, kw_only=True)
class OutputConfig:
    """What a run writes and shows."""

    dir: str | None = None
    """Folder of ``metrics.jsonl`` (one JSON object per step) and ``reward.png`` (the reward
    curve); ``None``: nothing written."""


@dataclass(frozen=True, kw_only=True)
class RLConfig:
    """A whole asynchronous RL run."""

    model: ModelConfig
    """The policy to train."""
    data: DataConfig = field(default_factory=DataConfig)
    """The prompts."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """The rollout workers."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """The reward workers."""
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    """Advantages, losses, KL, off-policy correction."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """The trainer's optimizer and resources."""
    sync: SyncConfig = field(default_factory=SyncConfig)
    """Weight sync from the trainer to the rollout workers."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoints and resume."""
    output: OutputConfig = field(default_factory=OutputConfig)
    """Metrics log, reward curve, progress display."""
    buffer_size: int = 1
    """Batches that may be generated ahead of training (generating, waiting or being trained
    on). 1: the synchronous on-policy loop; 2: batch N+1 is generated while batch N trains
    (lag ≤ 1); k: lag ≤ k − 1, further limited by ``max_staleness``."""
    max_staleness: int | None = None
    """Most policy versions a sample may lag behind the trainer when trained on (``None``:
    ``buffer_size − 1``). Rollout waits rather than generate a batch that would be staler."""
    total_steps: int = 20
    """Training steps (one batch each) of the run, counted from step 0 (a resumed run does
    the rest)."""
    seed: int = 0
    """Seeds the prompt order, the sampling and the trainer."""

    def __post_init__(self) -> None:
        _check(self.buffer_size >= 1, "RLConfig.buffer_size", ">= 1", self.buffer_size)
        if self.max_staleness is not None:
            _check(self.max_staleness >= 0, "RLConfig.max_staleness", ">= 0", self.max_staleness)
        _check(self.total_steps >= 1, "RLConfig.total_steps", ">= 1", self.total_steps)
        if self.sync.backend == "nccl" and (
            self.trainer.num_gpus <= 0 or self.rollout.num_gpus <= 0
        ):
            message = (
                "SyncConfig.backend 'nccl' needs GPUs on both sides (trainer.num_gpus and "
                f"rollout.num_gpus > 0); got {self.trainer.num_gpus}, {self.rollout.num_gpus}"
            )
            raise ConfigError(message)

    @property
    def staleness_limit(self) -> int:
        """The largest lag a trained sample may have: ``min(buffer_size − 1, max_staleness)``."""
        limit = self.buffer_size - 1
        return limit if self.max_staleness is None else min(limit, self.max_staleness)


# -- from YAML / mappings ------------------------------------------------------------------


def load_config(source: str | Path | Mapping[str, Any]) -> RLConfig:
    """An :class:`RLConfig` from a YAML file (path) or a mapping of the same shape."""
    if isinstance(source, Mapping):
        return config_from_dict(source)
    import yaml

    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the config file {str(path)!r}: {error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top; got {document!r}")
    return config_from_dict(document)


def config_from_dict(data: Mapping[str, Any]) -> RLConfig:
    """An :class:`RLConfig` from nested mappings; errors name the field's dotted path."""
    value = _build(RLConfig, data, "")
    assert isinstance(value, RLConfig)
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config as plain nested dicts (JSON/YAML-able), the inverse of :func:`config_from_dict`."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        elif isinstance(value, Mapping):
            out[f.name] = dict(value)
        else:
            out[f.name] = value
    return out


def _build(cls: type, data: Any, where: str) -> Any:
    name = cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or name} must be a mapping of {name} fields; got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        message = f"{where or name}: unknown field(s) {unknown}; {name} has {sorted(fields)}"
        raise ConfigError(message)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        kwargs[key] = _coerce(hints[key], value, path)
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field is missing
        missing = [
            f.name
            for f in fields.values()
            if f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        message = f"{where or name}: missing required field(s) {missing} ({error})"
        raise ConfigError(message) from error
    except ConfigError as error:
        raise ConfigError(f"{where or name}: {error}") from error


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, path)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {' / '.join(errors)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path} must be one of {list(args)}; got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{path} must be a list of {len(args)} values; got {value!r}")
        return tuple(
            _coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is Mapping or hint is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping; got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false; got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer; got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} must be a number; got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string; got {value!r}")
        return value
    return value
