"""GPU check part one, run here with the CPU in place of CUDA: it needs neither Ray nor verl
nor structlog, and its plain-torch policy step is the trainer's step."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "gpu_check_part1.py"

# Runs the script as the lent GPU image would: Ray, verl and structlog cannot be imported.
_WITHOUT_RAY = """
import runpy, sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("ray", "verl", "structlog", "vllm", "sglang"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check_part1", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_part_one_passes_on_the_cpu_without_ray_verl_or_structlog(tmp_path: Path) -> None:
    out = tmp_path / "part1.json"
    command = [
        sys.executable,
        "-c",
        _WITHOUT_RAY,
        str(SCRIPT),
        "--device",
        "cpu",
        "--out",
        str(out),
    ]

    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["ok"] is True
    names = {c["check"] for c in result["checks"]}
    assert {
        "step.loss_abs",
        "step.update_cosine",
        "engine.sample_logprob_max_abs",
        "engine.loaded_weights_max_abs",
        "engine.greedy_match_after_load",
    } <= names
    assert all(c["ok"] for c in result["checks"])


def test_part_one_policy_step_equals_the_trainers_step(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from tideflow.rl import AlgorithmConfig, ModelConfig, Sample, TrainerConfig
    from tideflow.rl._policy import PolicyTrainer  # the step part one mirrors
    from tideflow.rl.toy import DigitTask, build_digit_model

    script = _script()
    path = build_digit_model(tmp_path / "model", hidden_size=32, num_heads=1, num_layers=1)
    generator = torch.Generator().manual_seed(0)
    samples = []
    for i, item in enumerate(DigitTask().items(8, seed=5)):
        prompt = [3 + int(d) for d in item["prompt"].split()[:-1]] + [2]
        length = 1 + i % 4
        response = torch.randint(0, 13, (length,), generator=generator).tolist()
        behaviour = (-2.6 + 0.6 * torch.randn(length, generator=generator)).tolist()
        samples.append(
            Sample(
                batch=0,
                prompt_id=i,
                group=str(i // 4),
                prompt_token_ids=prompt,
                response_token_ids=response,
                behaviour_logprobs=behaviour,
                version=0,
                reward=float(i % 3) / 2,
            )
        )
    trainer = PolicyTrainer(
        model=ModelConfig(path=str(path)),
        algorithm=AlgorithmConfig(),
        trainer=TrainerConfig(lr=1e-3, num_threads=1),
        temperature=1.0,
        samples_per_prompt=4,
        seed=0,
    )
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    batch = script.batch_tensors(
        [
            {
                "prompt": s.prompt_token_ids,
                "response": s.response_token_ids,
                "logprobs": s.behaviour_logprobs,
                "reward": s.reward,
                "group": s.group,
            }
            for s in samples
        ],
        pad=trainer.pad_token_id,
    )

    theirs = trainer.train_step(samples)
    ours = script.policy_step(model, optimizer, batch)

    assert ours["loss"] == pytest.approx(theirs["pg_loss"], abs=1e-6)
    assert theirs["actor/pg_clipfrac"] > 0  # the behaviour log-probs make clipping act
    assert ours["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=1e-5)
    expected = dict(trainer.model.named_parameters())
    for name, parameter in model.named_parameters():  # within 1 % of one step (lr 1e-3)
        torch.testing.assert_close(parameter, expected[name], atol=1e-5, rtol=0.0)
