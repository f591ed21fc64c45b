"""Runs shared by several test modules (module-level fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tideflow.rl import DataConfig, ModelConfig, RLConfig, RolloutConfig, TrainerConfig
from tideflow.rl.toy import DigitTask

PROMPTS, SAMPLES = 16, 8
SYNC_STEPS = 4
ASYNC_STEPS = 30


def _prompts_file(folder: Path, n: int) -> str:
    path = folder / "prompts.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in DigitTask().items(n, seed=5)))
    return str(path)


def _config(model: str, data: str, **overrides: object) -> RLConfig:
    base: dict[str, object] = {
        "model": ModelConfig(path=model),
        "data": DataConfig(path=data, prompts_per_step=PROMPTS, shuffle=False),
        "rollout": RolloutConfig(samples_per_prompt=SAMPLES, max_tokens=DigitTask().max_tokens),
        "trainer": TrainerConfig(lr=1e-3),
        "seed": 3,
    }
    base.update(overrides)
    return RLConfig(**base)  # type: ignore[arg-type]
