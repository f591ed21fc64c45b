"""Fixtures of the tools' tests: one local Ray, shared with other packages' tests if running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow.core.testing import local_ray


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    with local_ray(num_cpus=8):
        yield
