"""How the ingest sizes itself: its queue limit follows the pools, and the pools follow
the Ray cluster it runs on (started first when none runs)."""

from __future__ import annotations

import pytest

import tideflow_video_search.ingest as ingest_module
from tideflow.core.errors import ConfigError
from tideflow_video_search.config import IngestConfig
from tideflow_video_search.ingest import Ingest, default_pools, queue_limit_for


def test_two_batches_wait_before_each_stage_while_no_pool_can_pass_two_actors() -> None:
    # 6 CPU slots (a 2-core machine): OCR 1-2 actors, speech 2, embeddings 1.
    assert max(default_pools(6)["ocr"]) == 2
    assert queue_limit_for(IngestConfig(), 6) == 2


def test_bigger_pools_get_the_engines_queues_sized_to_them() -> None:
    # A fixed limit of 2 would let each stage run two batches at once: a pool of 15 OCR
    # actors on a 32-slot cluster would never have more than two of them busy.
    assert queue_limit_for(IngestConfig(), 32) is None
    assert queue_limit_for(IngestConfig(ocr_pool=(1, 4)), 6) is None
    assert queue_limit_for(IngestConfig(embed_pool=3), 6) is None
    assert queue_limit_for(IngestConfig(ocr_pool=1, speech_pool=1), 32) == 2


def test_a_queue_limit_given_must_be_a_positive_int(tmp_path) -> None:
    for bad in (0, -1, True, 2.5, "2"):
        with pytest.raises(ConfigError, match="queue_limit"):
            Ingest(str(tmp_path), tmp_path / "index", queue_limit=bad)


class _Built(Exception):
    pass


@pytest.mark.parametrize("method", ["run", "start"])
def test_ray_starts_before_the_pools_are_sized(tmp_path, monkeypatch, method) -> None:
    """The pools are sized to the Ray cluster's CPUs: built before Ray started, they were
    sized to the machine's cores instead (one speech actor on 2 cores, not two)."""
    order: list[str] = []

    def start_ray(**_options: object) -> None:
        order.append("ray")

    def cluster_cpus() -> int:  # 2 cores; a Ray started by the app has 6 CPU slots
        return 6 if "ray" in order else 2

    def build_pipeline(*_args: object, **_kwargs: object) -> None:
        order.append(f"pipeline on {ingest_module._cluster_cpus()} CPUs")
        raise _Built

    monkeypatch.setattr(ingest_module, "start_ray", start_ray)
    monkeypatch.setattr(ingest_module, "_cluster_cpus", cluster_cpus)
    monkeypatch.setattr(ingest_module, "build_pipeline", build_pipeline)
    videos = tmp_path / "videos"
    videos.mkdir()
    job = Ingest(str(videos), tmp_path / "index")
    with pytest.raises(_Built):
        getattr(job, method)()
    assert order == ["ray", "pipeline on 6 CPUs"]
