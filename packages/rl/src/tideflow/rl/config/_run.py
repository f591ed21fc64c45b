"""The whole run: :class:`RLConfig` over the roles, with the model, the prompts, weight
sync, checkpoints and output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tideflow.rl.config._checks import DTYPES, _check
from tideflow.rl.config._reward import RewardConfig
from tideflow.rl.config._rollout import RolloutConfig
from tideflow.rl.config._training import AlgorithmConfig, TrainerConfig
from tideflow.rl.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The policy: a local Hugging Face model directory (weights, config, tokenizer)."""

    path: str
    """Directory of the initial policy; the rollout engines and the trainer load it."""
    dtype: str = "float32"
    """Torch dtype of the trainer's weights (``float32``, ``bfloat16``)."""

    def __post_init__(self) -> None:
        _check(bool(self.path), "ModelConfig.path", "a non-empty path", self.path)
        _check(self.dtype in DTYPES, "ModelConfig.dtype", f"one of {DTYPES}", self.dtype)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The prompts and how many go into one training step."""

    path: str | None = None
    """A JSONL file: one object per line with ``prompt`` (text) or ``prompt_token_ids``, and
    any fields the reward function reads (``answer`` …); an ``id``, if given, is a unique
    integer (the prompt ledger counts prompts by it; default: the prompt's position).
    ``None``: the toy digit task."""
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
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            expected = f"a {cls.__name__} (a mapping of its fields: use config_from_dict)"
            _check(isinstance(value, cls), f"RLConfig.{name}", expected, value)
        _check(self.buffer_size >= 1, "RLConfig.buffer_size", ">= 1", self.buffer_size)
        batch = self.data.prompts_per_step * self.rollout.samples_per_prompt
        _check(
            batch % self.trainer.mini_batches == 0,
            "TrainerConfig.mini_batches",
            f"a divisor of the batch's {batch} samples (data.prompts_per_step "
            f"{self.data.prompts_per_step} × rollout.samples_per_prompt "
            f"{self.rollout.samples_per_prompt}), so that mini-batches are equal",
            self.trainer.mini_batches,
        )
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


_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "rollout": RolloutConfig,
    "reward": RewardConfig,
    "algorithm": AlgorithmConfig,
    "trainer": TrainerConfig,
    "sync": SyncConfig,
    "checkpoint": CheckpointConfig,
    "output": OutputConfig,
}
"""The sections of :class:`RLConfig` and the dataclass each must be."""
