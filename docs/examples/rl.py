# --8<-- [start:example]
"""The async RL trainer: two GRPO steps with two-batch overlap on a tiny digit model."""

import json
import tempfile
from pathlib import Path

from tideflow.rl import DataConfig, ModelConfig, RLConfig, RolloutConfig, TrainerConfig, train
from tideflow.rl.toy import DigitTask, build_digit_model

root = Path(tempfile.mkdtemp())
task = DigitTask()
model = build_digit_model(root / "model")  # a tiny Qwen2 with a digit tokenizer
prompts = root / "prompts.jsonl"  # JSONL: `prompt` plus whatever the reward function reads
prompts.write_text("".join(json.dumps(item) + "\n" for item in task.items(32, seed=0)))

config = RLConfig(
    model=ModelConfig(path=str(model)),
    data=DataConfig(path=str(prompts), prompts_per_step=4),
    rollout=RolloutConfig(samples_per_prompt=4, max_tokens=task.max_tokens),
    trainer=TrainerConfig(lr=1e-3),
    buffer_size=2,  # train on batch N while batch N+1 is generated
    total_steps=2,
)
result = train(config)  # RLTrainer(config).run(); reward: tideflow.rl.toy:reward
for step in result.steps:
    print(step.step, step.reward_mean, step.loss, step.staleness)
assert len(result.steps) == 2
# --8<-- [end:example]
