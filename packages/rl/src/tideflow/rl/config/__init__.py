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

from tideflow.rl.config._loading import config_from_dict, config_to_dict, load_config
from tideflow.rl.config._reward import RewardConfig, RewardModelConfig
from tideflow.rl.config._rollout import RolloutAutoscaleConfig, RolloutConfig
from tideflow.rl.config._run import (
    CheckpointConfig,
    DataConfig,
    ModelConfig,
    OutputConfig,
    RLConfig,
    SyncConfig,
)
from tideflow.rl.config._training import AlgorithmConfig, TrainerConfig

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
