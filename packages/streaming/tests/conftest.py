"""Shared fixtures: one real S3-protocol server (moto) and one local Ray per test run.

The S3 server and the shared Ray come from :mod:`tideflow.core.testing`; its S3 keys are
distinctive so that tests can assert they never leak into text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Read by Ray when it is first imported (tideflow.streaming imports it), so set before the
# imports below. Under `uv run`, Ray 2.60 starts every worker through `uv run` with the
# repository as its working_dir: workers that sync a fresh environment of their own (this
# folder's tests run alone hung on it) instead of sharing this venv.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

from tideflow.core.testing import S3Server, moto_s3_server
from tideflow.streaming.testing import KafkaBroker
from tideflow.streaming.testing import kafka_broker as start_broker

TESTS_DIR = Path(__file__).resolve().parent
# Helper modules whose functions and classes run inside Ray actors.
UDF_MODULES = ("_udfs", "_kafka_driver", "_kafka_iceberg_driver", "_llm_udfs", "_table_driver")
# Test helper modules (_udfs, _driver) import by plain name here and on Ray's workers.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray shared by the whole test session (a new one costs ~5 s).

    The tests folder goes on the workers' ``PYTHONPATH`` so that helper modules of this
    folder import under the same name on both sides.
    """
    import importlib

    from ray import cloudpickle

    from tideflow.core.testing import local_ray

    # When another package's tests started the shared Ray first, its workers lack this
    # folder on their path: ship this folder's helper modules (the functions and classes
    # that run in actors) by value instead of by name.
    for name in UDF_MODULES:
        cloudpickle.register_pickle_by_value(importlib.import_module(name))
    with local_ray(num_cpus=8, resources={"accel": 2}, pythonpath=[str(TESTS_DIR)]):
        yield


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A local in-memory Kafka-protocol broker (tansu) for the whole test session."""
    from tideflow.streaming.connectors import KafkaSink, KafkaSource

    with start_broker() as broker:
        yield broker
        # Driver-side clients cached in this process would keep calling a stopped broker
        # (jobs close theirs; tests that call discover or commit directly leave some).
        KafkaSource(topics="any", bootstrap_servers=broker.bootstrap_servers).close()
        KafkaSink(topic="any", bootstrap_servers=broker.bootstrap_servers).close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-protocol server (moto in server mode) on a free port of 127.0.0.1."""
    with moto_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket for one test; returns its name."""
    return s3_server.new_bucket(request.node.name)
