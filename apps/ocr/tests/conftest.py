"""Shared fixtures of the OCR app's tests: one local Ray, a Kafka-protocol broker, an
S3-protocol server, and the generated corpus (written once per session).

Everything is real: rapidocr with its bundled models, PyAV, Iceberg on a SQLite catalog,
tansu for Kafka, moto for S3. Ray's settings are set at import, before Ray is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from tideflow.core.testing import S3Server, moto_s3_server  # noqa: E402
from tideflow.streaming.testing import KafkaBroker  # noqa: E402
from tideflow.streaming.testing import kafka_broker as start_broker  # noqa: E402
from tideflow_ocr.testdata import VideoSpec, default_specs, make_corpus  # noqa: E402


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray shared by the whole test session (reused if another package started it)."""
    from tideflow.core.testing import local_ray

    with local_ray(num_cpus=8, resources={"accel": 2}, pythonpath=[str(TESTS_DIR)]):
        yield


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A local in-memory Kafka-protocol broker (tansu) for the session."""
    from tideflow.streaming.connectors import KafkaSource

    with start_broker() as broker:
        yield broker
        # Driver-side clients would keep calling a stopped broker (jobs close their own).
        KafkaSource(topics="any", bootstrap_servers=broker.bootstrap_servers).close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with moto_s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[VideoSpec]]:
    """The default generated videos (English, Chinese, one corrupt, one truncated) in a
    folder of their own. Chinese is always in: without its font (`make system-deps` installs it)
    the corpus fails with the font's name rather than test less."""
    folder = tmp_path_factory.mktemp("ocr-corpus")
    return folder, make_corpus(folder, default_specs(chinese=True))
