"""Shared fixtures: one real S3-protocol server (moto) and one local Ray per test run.

Copied from ``packages/core/tests/conftest.py`` (test folders do not import each other).
The S3 keys are distinctive so that tests can assert they never leak into text.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
# Test helper modules (_udfs, _driver) import by plain name here and on Ray's workers.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# Read by Ray when it is first imported, so set before any test module imports it.
# Under `uv run`, Ray 2.60 starts every worker through `uv run` with the repository as its
# working_dir (~2 s more per actor start); the workers share this venv already.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray shared by the whole test session (a new one costs ~5 s).

    The tests folder goes on the workers' ``PYTHONPATH`` so that helper modules of this
    folder import under the same name on both sides.
    """
    import _udfs
    from ray import cloudpickle

    from tideflow.core.testing import local_ray

    # When another package's tests started the shared Ray first, its workers lack this
    # folder on their path: ship this folder's helpers by value instead of by name.
    cloudpickle.register_pickle_by_value(_udfs)
    with local_ray(num_cpus=8, resources={"accel": 2}, pythonpath=[str(TESTS_DIR)]):
        yield


@dataclass(frozen=True)
class S3Server:
    """A moto S3 server on 127.0.0.1 and how to reach it from pyarrow."""

    host: str
    port: int
    access_key: str = "AKIAQUIETKEY7"
    secret_key: str = "s3cr3t-Sw0rdfish"
    region: str = "us-east-1"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def filesystem(self) -> Any:  # pyarrow.fs.S3FileSystem
        from pyarrow import fs

        return fs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            allow_bucket_creation=True,
            allow_bucket_deletion=True,
        )

    def uri(self, bucket: str, path: str = "") -> str:
        """An ``s3://`` URI with keys and endpoint inline, as ``FileSystem.from_uri`` wants."""
        tail = f"/{path.strip('/')}" if path else ""
        return (
            f"s3://{self.access_key}:{self.secret_key}@{bucket}{tail}"
            f"?endpoint_override={self.endpoint}&scheme=http&region={self.region}"
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-protocol server (moto in server mode) on a free port of 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(host="127.0.0.1", port=port)
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket for one test; returns its name."""
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") or "bucket"
    name = f"tf-{name}-{_free_port()}"
    s3_server.filesystem().create_dir(name)
    return name
