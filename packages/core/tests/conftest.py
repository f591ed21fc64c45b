"""Shared fixtures: one real local Ray session and one real S3-protocol server per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow.core.testing import S3Server, local_ray, moto_s3_server

TESTS_DIR = Path(__file__).resolve().parent

# Read by Ray when it is first imported, so set before any test module imports it.
# Under `uv run`, Ray 2.60 starts every worker through `uv run` with the repository as its
# working_dir (~2 s more per actor start); the workers share this venv already.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray shared by the whole test session (a new one costs ~5 s).

    Logical CPUs are generous so pools of several small actors fit on a 2-core machine;
    a custom resource ``accel`` stands in for accelerators. The tests folder goes on the
    workers' ``PYTHONPATH`` and this process's ``sys.path``, so that a helper module such as
    ``_actors`` has the same importable name on both sides (``--import-mode=importlib``
    leaves it off).
    """
    with local_ray(num_cpus=8, resources={"accel": 2}, pythonpath=[str(TESTS_DIR)]):
        yield


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-protocol server (moto in server mode) on a free port of 127.0.0.1."""
    with moto_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket for one test; returns its name."""
    return s3_server.new_bucket(request.node.name)
