"""What a run's configuration is checked for before Ray starts: verl's names for the
algorithm, pieces verl has but this trainer cannot feed, equal mini-batches, prompt ids the
ledger can count. Each fails as a ConfigError naming the field, not as a role failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tideflow.rl import (
    AlgorithmConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    RLConfig,
    RLTrainer,
    RolloutConfig,
    Sample,
    TrainerConfig,
)
from tideflow.rl._policy import PolicyTrainer, check_algorithm
from tideflow.rl.cli import main


def _registry(name: str) -> list[str]:
    from verl.trainer.ppo import core_algos

    return sorted(getattr(core_algos, name))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tideflow.rl.toy import build_digit_model

    path = build_digit_model(
        tmp_path_factory.mktemp("rl-preflight"), hidden_size=32, num_heads=1, num_layers=1
    )
    return str(path)


def _samples() -> list[Sample]:
    """Two groups of four samples with behaviour log-probs and rewards of 0, ½ and 1."""
    import torch

    generator = torch.Generator().manual_seed(0)
    samples = []
    for i in range(8):
        length = 1 + i % 4
        samples.append(
            Sample(
                batch=0,
                prompt_id=i // 4,
                group=str(i // 4),
                prompt_token_ids=[3, 4, 2],
                response_token_ids=torch.randint(0, 13, (length,), generator=generator).tolist(),
                behaviour_logprobs=(-2.6 + 0.6 * torch.randn(length, generator=generator)).tolist(),
                version=0,
                reward=float(i % 3) / 2,
            )
        )
    return samples


def _step(model: str, algorithm: AlgorithmConfig) -> dict[str, Any]:
    trainer = PolicyTrainer(
        model=ModelConfig(path=model),
        algorithm=algorithm,
        trainer=TrainerConfig(lr=1e-3),
        temperature=1.0,
        samples_per_prompt=4,
        seed=0,
    )
    return trainer.train_step(_samples())


def _passes(algorithm: dict[str, Any]) -> bool:
    try:
        check_algorithm(AlgorithmConfig(**algorithm))
    except ConfigError:
        return False
    return True


def test_every_advantage_estimator_the_check_accepts_trains_a_step(tiny_model: str) -> None:
    accepted = [n for n in _registry("ADV_ESTIMATOR_REGISTRY") if n != "gae"]
    accepted = [n for n in accepted if _passes({"advantage": n})]
    assert {"grpo", "rloo", "reinforce_plus_plus", "opo", "gpg", "grpo_passk"} <= set(accepted)
    for name in accepted:
        metrics = _step(tiny_model, AlgorithmConfig(advantage=name))
        assert metrics["version"] == 1, name


@pytest.mark.parametrize(
    ("name", "missing"),
    [("remax", "reward_baselines"), ("optimal_token_baseline", "sum_pi_squared")],
)
def test_an_estimator_that_needs_inputs_the_trainer_lacks_is_a_config_error(
    name: str, missing: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        check_algorithm(AlgorithmConfig(advantage=name))
    message = str(raised.value)
    assert "AlgorithmConfig.advantage must be one of" in message
    assert f"got {name!r}" in message and missing in message
    assert "'grpo'" in message  # the valid ones are listed


def test_every_policy_loss_the_check_accepts_trains_a_decoupled_step(tiny_model: str) -> None:
    accepted = [
        n
        for n in _registry("POLICY_LOSS_REGISTRY")
        if _passes({"off_policy": "decoupled", "policy_loss": n})
    ]
    assert {"vanilla", "gspo", "cispo"} <= set(accepted)
    for name in accepted:
        metrics = _step(tiny_model, AlgorithmConfig(off_policy="decoupled", policy_loss=name))
        assert metrics["version"] == 1, name


def test_a_policy_loss_that_needs_a_setting_the_config_lacks_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"policy_loss must be one of .*got 'dro' \(needs"):
        check_algorithm(AlgorithmConfig(off_policy="decoupled", policy_loss="dro"))


def test_a_policy_loss_that_bypass_mode_would_ignore_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        AlgorithmConfig(policy_loss="gspo")  # off_policy is "bypass" by default
    assert "AlgorithmConfig.policy_loss 'gspo' takes effect with off_policy='decoupled'" in str(
        raised.value
    )
    assert AlgorithmConfig(off_policy="decoupled", policy_loss="gspo").policy_loss == "gspo"


def _run_config(model: str, tmp_path: Path, **overrides: Any) -> RLConfig:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": "1 2 3 ="}) + "\n" for _ in range(4)))
    fields: dict[str, Any] = {
        "model": ModelConfig(path=model),
        "data": DataConfig(path=str(prompts), prompts_per_step=2),
        "rollout": RolloutConfig(samples_per_prompt=2, max_tokens=4),
        "total_steps": 1,
    }
    return RLConfig(**{**fields, **overrides})


def test_an_unknown_advantage_fails_when_the_trainer_is_built_not_in_an_actor(
    tiny_model: str, tmp_path: Path
) -> None:
    config = _run_config(tiny_model, tmp_path, algorithm=AlgorithmConfig(advantage="grpo_typo"))
    with pytest.raises(ConfigError, match=r"AlgorithmConfig\.advantage must be one of"):
        RLTrainer(config)  # no Ray: the constructor starts nothing


def test_the_cli_reports_an_unknown_policy_loss_before_ray_starts_and_exits_2(
    tiny_model: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Ray was started for a config with a bad algorithm")

    monkeypatch.setattr(ray, "init", refuse)
    path = tmp_path / "run.yaml"
    path.write_text(f"model: {{path: {tiny_model}}}\n")
    argv = ["train", str(path), "--no-progress", "--set", "algorithm.policy_loss=ppo"]
    argv += ["--set", "algorithm.off_policy=decoupled"]

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "AlgorithmConfig.policy_loss must be one of" in err


def test_mini_batches_that_do_not_divide_the_batch_are_a_config_error() -> None:
    model = ModelConfig(path="m")
    rollout = RolloutConfig(samples_per_prompt=4)
    with pytest.raises(ConfigError, match=r"TrainerConfig\.mini_batches must be a divisor of the "
                       r"batch's 8 samples .*got 3"):  # fmt: skip
        RLConfig(
            model=model,
            data=DataConfig(prompts_per_step=2),
            rollout=rollout,
            trainer=TrainerConfig(mini_batches=3),
        )
    config = RLConfig(
        model=model,
        data=DataConfig(prompts_per_step=2),
        rollout=rollout,
        trainer=TrainerConfig(mini_batches=4),
    )
    assert config.trainer.mini_batches == 4


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [{"id": "q-1", "prompt": "1 ="}, {"id": "q-2", "prompt": "2 ="}],
            ":1: 'id' must be an integer",
        ),
        (
            [{"id": 7, "prompt": "1 ="}, {"id": 7, "prompt": "2 ="}],
            ":2: 'id' 7 is already the id of line 1",
        ),
        (  # a prompt without an id gets its position, which another prompt has
            [{"prompt": "1 ="}, {"id": 0, "prompt": "2 ="}],
            ":2: 'id' 0 is already the id of line 1",
        ),
    ],
)
def test_prompt_ids_the_ledger_cannot_count_are_a_config_error(
    lines: list[dict[str, Any]], expected: str, tiny_model: str, tmp_path: Path
) -> None:
    prompts = tmp_path / "ids.jsonl"
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = RLConfig(
        model=ModelConfig(path=tiny_model),
        data=DataConfig(path=str(prompts), prompts_per_step=2),
        rollout=RolloutConfig(samples_per_prompt=2, max_tokens=4),
    )
    with pytest.raises(ConfigError) as raised:
        RLTrainer(config)
    assert expected in str(raised.value)
