"""Configuration: typed dataclasses, YAML and the command line reject bad fields clearly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tideflow.rl import (
    AlgorithmConfig,
    ConfigError,
    ModelConfig,
    RLConfig,
    RolloutConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from tideflow.rl.cli import main


def test_a_yaml_file_builds_the_nested_typed_config(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: {path: /models/tiny}\n"
        "rollout: {samples_per_prompt: 8, temperature: 1}\n"
        "trainer: {betas: [0.9, 0.95]}\n"
        "buffer_size: 2\n"
    )
    config = load_config(path)
    assert config.rollout.samples_per_prompt == 8
    assert config.rollout.temperature == 1.0 and isinstance(config.rollout.temperature, float)
    assert config.trainer.betas == (0.9, 0.95)
    assert config.buffer_size == 2
    assert config.staleness_limit == 1
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"model": {"path": "m"}, "rollout": {"samples": 4}},
            "rollout: unknown field(s) ['samples']",
        ),
        ({"model": {"path": "m"}, "buffer_size": "two"}, "buffer_size must be an integer"),
        ({"model": {"path": "m"}, "rollout": {"temperature": 0}}, "temperature must be > 0"),
        (
            {"model": {"path": "m"}, "rollout": {"engine": "sglang"}},
            "rollout.engine must be one of",
        ),
        ({"data": {}}, "missing required field(s) ['model']"),
        ({"model": {"path": "m"}, "buffer_size": 0}, "RLConfig.buffer_size must be >= 1; got 0"),
        (
            {"model": {"path": "m"}, "trainer": {"device": "cuda"}},
            "num_gpus must be > 0 with device 'cuda'",
        ),
        (
            {"model": {"path": "m"}, "rollout": {"device": "cuda:1", "num_gpus": 0}},
            "num_gpus must be > 0 with device 'cuda:1'",
        ),
    ],
)
def test_a_bad_field_is_named_with_what_was_expected(document: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict(document)
    assert expected in str(raised.value)


def test_the_staleness_limit_is_the_smaller_of_buffer_and_max_staleness() -> None:
    model = ModelConfig(path="m")
    assert RLConfig(model=model, buffer_size=1).staleness_limit == 0
    assert RLConfig(model=model, buffer_size=4).staleness_limit == 3
    assert RLConfig(model=model, buffer_size=4, max_staleness=1).staleness_limit == 1


def test_dataclass_configs_validate_on_construction() -> None:
    with pytest.raises(ConfigError, match=r"RolloutConfig\.top_p must be in"):
        RolloutConfig(top_p=0.0)


def test_a_role_on_a_gpu_must_reserve_one(tmp_path: Path) -> None:
    from tideflow.rl import RewardConfig, RewardModelConfig, TrainerConfig

    with pytest.raises(ConfigError, match=r"TrainerConfig\.num_gpus must be > 0"):
        TrainerConfig(device="cuda")
    assert TrainerConfig(device="cuda", num_gpus=0.5).num_gpus == 0.5
    model = RewardModelConfig(path=str(tmp_path), device="cuda")
    with pytest.raises(ConfigError, match=r"RewardConfig\.num_gpus must be > 0"):
        RewardConfig(model=model)
    assert RewardConfig(model=model, num_gpus=1).num_gpus == 1
    with pytest.raises(ConfigError, match=r"RewardConfig\.num_gpus must be >= 0"):
        RewardConfig(num_gpus=-1)


def test_the_cli_reports_a_bad_config_field_and_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model: {path: /m}\nalgorithm: {kl_type: nope}\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "AlgorithmConfig.kl_type must be one of" in err and "'nope'" in err


def test_the_cli_set_option_overrides_a_field_and_is_checked(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model: {path: /m}\n")
    assert main(["train", str(path), "--set", "rollout.max_tokens=0"]) == 2
    assert "RolloutConfig.max_tokens must be >= 1; got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("missing", "does not exist"),
        ("file", "is not a folder"),
        ("empty-folder", "is not a model folder (no config.json in it)"),
    ],
)
def test_the_cli_checks_the_model_path_before_starting_ray(
    kind: str, problem: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    import ray

    from tideflow.rl.trainer import RLTrainer

    started: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        started.append("ray")
        raise RuntimeError("Ray was started for a config with a bad model.path")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(RLTrainer, "_start_roles", refuse)
    model = tmp_path / "model"
    if kind == "file":
        model.write_text("not a model")
    elif kind == "empty-folder":
        model.mkdir()
    path = tmp_path / "run.yaml"
    path.write_text(f"model: {{path: {model}}}\n")
    assert main(["train", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"model.path {str(model)!r} {problem}; expected a local Hugging Face model" in err
    assert started == []


def test_the_cli_has_help_for_each_command(capsys) -> None:
    for argv in (["--help"], ["train", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "--set" in out and "--out" in out


def test_importing_the_cli_changes_no_environment() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    code = (
        "import os; before = dict(os.environ); import tideflow.rl, tideflow.rl.cli; "
        "assert dict(os.environ) == before, set(os.environ) ^ set(before)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: RLConfig(model="/models/tiny"),  # type: ignore[arg-type]
            "RLConfig.model must be a ModelConfig",
        ),
        (
            lambda: RLConfig(model=ModelConfig(path="m"), rollout={"num_workers": 2}),  # type: ignore[arg-type]
            "RLConfig.rollout must be a RolloutConfig",
        ),
        (
            lambda: RolloutConfig(autoscale={"min_workers": 1}),  # type: ignore[arg-type]
            "RolloutConfig.autoscale must be a RolloutAutoscaleConfig or None",
        ),
        (
            lambda: AlgorithmConfig(clip_ratio_low=-0.1),
            "AlgorithmConfig.clip_ratio_low must be > 0 or None; got -0.1",
        ),
        (
            lambda: AlgorithmConfig(clip_ratio_high=0.0),
            "AlgorithmConfig.clip_ratio_high must be > 0 or None; got 0.0",
        ),
    ],
)
def test_a_section_of_the_wrong_type_is_named_on_construction(
    build: Callable[[], object], expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        build()
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"min_workers": "2"}, "RolloutConfig.autoscale.min_workers must be an integer; got '2'"),
        ({"min_workers": 1.5}, "RolloutConfig.autoscale.min_workers must be an integer; got 1.5"),
        ({"max_workers": True}, "RolloutConfig.autoscale.max_workers must be an integer; got True"),
    ],
)
def test_autoscale_worker_counts_must_be_integers_from_python(fields: dict, expected: str) -> None:
    from tideflow.rl import RolloutAutoscaleConfig

    with pytest.raises(ConfigError) as raised:
        RolloutAutoscaleConfig(**fields)
    assert expected in str(raised.value)
