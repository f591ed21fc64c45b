"""Tideflow's asynchronous RL trainer: rollout and training decoupled by a bounded buffer.

Roles run as Ray actors: rollout workers (an engine of :mod:`tideflow.streaming.llm`, n
samples per prompt, behaviour log-probs, each sample tagged with its policy version),
reward workers, a bounded experience buffer and the trainer (policy, optional reference,
AdamW; verl's advantages, policy losses, KL and truncated importance weights).
``buffer_size=1`` is the synchronous on-policy loop; ``buffer_size=2`` trains on batch N
while batch N+1 is generated.

>>> from tideflow.rl import ModelConfig, RLConfig, train
>>> config = RLConfig(model=ModelConfig(path="/models/tiny"), buffer_size=2)
>>> result = train(config)  # doctest: +SKIP
"""

from __future__ import annotations

from tideflow.rl._data import Batch, Sample
from tideflow.rl._metrics import StepMetrics, read_metrics, write_reward_curve
from tideflow.rl._weights import chunk_weights
from tideflow.rl.config import (
    AlgorithmConfig,
    CheckpointConfig,
    DataConfig,
    ModelConfig,
    OutputConfig,
    RewardConfig,
    RewardModelConfig,
    RLConfig,
    RolloutAutoscaleConfig,
    RolloutConfig,
    SyncConfig,
    TrainerConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from tideflow.rl.errors import ConfigError, RLError, RoleFailedError
from tideflow.rl.trainer import RLResult, RLTrainer, Roles, batch_seed, train

__all__ = [
    # running
    "RLTrainer",
    "RLResult",
    "Roles",
    "batch_seed",
    "train",
    # configuration
    "RLConfig",
    "ModelConfig",
    "DataConfig",
    "RolloutConfig",
    "RolloutAutoscaleConfig",
    "RewardConfig",
    "RewardModelConfig",
    "AlgorithmConfig",
    "TrainerConfig",
    "SyncConfig",
    "CheckpointConfig",
    "OutputConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    # data and metrics
    "Batch",
    "Sample",
    "StepMetrics",
    "read_metrics",
    "write_reward_curve",
    "chunk_weights",
    # errors
    "ConfigError",
    "RLError",
    "RoleFailedError",
]
