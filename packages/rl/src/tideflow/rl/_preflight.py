"""What is checked of a run's configuration in the driver, before Ray and the roles start.

A field that only an actor would find wrong (a model folder that is not there, an advantage
estimator verl lacks, a reward function that does not import) fails here as a
:class:`~tideflow.rl.errors.ConfigError` naming the field, not as a role failure after
Ray's start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tideflow.rl.config import RLConfig
from tideflow.rl.errors import ConfigError

__all__ = ["check_model_path", "check_run"]

_MODEL_FOLDER = "a local Hugging Face model folder (config.json, the weights, the tokenizer)"


def check_model_path(path: str) -> None:
    """``model.path`` is a model folder (a rollout worker or the trainer would fail to load
    it only after Ray's start-up)."""
    folder = Path(path)
    if not folder.exists():
        problem = "does not exist"
    elif not folder.is_dir():
        problem = "is not a folder"
    elif not (folder / "config.json").is_file():
        problem = "is not a model folder (no config.json in it)"
    else:
        return
    raise ConfigError(f"model.path {path!r} {problem}; expected {_MODEL_FOLDER}")


def check_run(config: RLConfig, items: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Every driver-side check of ``config``: the model folder, verl's names for the
    algorithm, the reward function or model (its template against the prompt ``items``,
    loaded from ``config.data`` when not given)."""
    from tideflow.rl._data import load_prompts
    from tideflow.rl._policy import check_algorithm
    from tideflow.rl._reward import check_reward

    check_model_path(config.model.path)
    check_algorithm(config.algorithm)
    model = config.reward.model
    if items is None and model is not None and model.template is not None:
        items = load_prompts(config.data)
    check_reward(config.reward, items)
