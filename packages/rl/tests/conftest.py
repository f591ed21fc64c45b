"""Shared fixtures of the RL trainer's tests: one local Ray, one warmed-up tiny digit model."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# Read by Ray when it is first imported (see packages/streaming/tests/conftest.py).
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI tests configure structlog for the whole process (a level, a stream); put
    structlog back afterwards, or later tests (of any package) lose their log records."""
    yield
    import structlog

    structlog.reset_defaults()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """The local Ray shared by every package's tests (started here if none runs yet)."""
    from tideflow.core.testing import local_ray

    with local_ray(num_cpus=8, resources={"accel": 2}, pythonpath=[str(TESTS_DIR)]):
        yield


@pytest.fixture(scope="session")
def digit_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny Qwen2 digit model after 40 supervised warm-up steps (≈ 2 s on one core)."""
    from tideflow.rl.toy import build_digit_model, warm_up

    path = build_digit_model(tmp_path_factory.mktemp("rl-digit-model"))
    warm_up(path, steps=40, num_threads=1)
    return str(path)


@pytest.fixture(scope="session")
def sync_run(ray_session, digit_model, tmp_path_factory) -> tuple[Any, Any]:
    from _rl_runs import PROMPTS, SYNC_STEPS, _config, _prompts_file

    from tideflow.rl import OutputConfig, train

    folder = tmp_path_factory.mktemp("rl-sync")
    config = _config(
        digit_model,
        _prompts_file(folder, PROMPTS * SYNC_STEPS),
        buffer_size=1,
        total_steps=SYNC_STEPS,
        output=OutputConfig(dir=str(folder / "out")),
    )
    return train(config), config


@pytest.fixture(scope="session")
def async_run(ray_session, digit_model, tmp_path_factory) -> Any:
    from _rl_runs import ASYNC_STEPS, _config, _prompts_file

    from tideflow.rl import train

    folder = tmp_path_factory.mktemp("rl-async")
    config = _config(
        digit_model,
        _prompts_file(folder, 512),
        buffer_size=2,
        total_steps=ASYNC_STEPS,
    )
    return train(config)
