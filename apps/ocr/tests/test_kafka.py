"""A Kafka topic of video URIs as the source (real tansu broker): messages name videos
(text or JSON), a bad message goes to the dead letters and the failure callback, and a
priority video produced last overtakes the videos queued before it."""

from __future__ import annotations

import json

import pytest

from tideflow.streaming.testing import send_to_topic
from tideflow_ocr import OcrApp, OcrConfig, read_results
from tideflow_ocr.testdata import bench_specs, character_error_rate, make_corpus

pytestmark = [pytest.mark.kafka, pytest.mark.ray, pytest.mark.slow]


def test_videos_named_on_a_kafka_topic_are_read_and_a_priority_video_goes_first(
    ray_session, kafka_broker, tmp_path
):
    specs = make_corpus(tmp_path / "videos", bench_specs(6, seconds=4.0, seed=21))
    *normal, urgent = specs
    paths = {s.name: str(tmp_path / "videos" / s.name) for s in specs}
    messages = [paths[normal[0].name].encode()]  # a bare URI
    messages += [
        json.dumps({"uri": paths[s.name], "video_id": s.name}).encode() for s in normal[1:]
    ]
    messages.append(b"this is not a video uri")
    messages.append(
        json.dumps({"uri": paths[urgent.name], "video_id": urgent.name, "priority": 9}).encode()
    )
    send_to_topic(kafka_broker.bootstrap_servers, "ocr-videos", messages)
    failures: list = []
    result = OcrApp(
        f"kafka://{kafka_broker.bootstrap_servers}/ocr-videos",
        [str(tmp_path / "out")],
        config=OcrConfig(shard_seconds=2.0, ocr_concurrency=(1, 1)),
        state_uri=str(tmp_path / "state"),
        job_id="kafka-ocr",
        queue_limit=8,  # a backlog deep enough for the priority video to overtake
    ).run(on_failure=failures.extend, progress=False)

    rows = {r["video_id"]: r for r in read_results(str(tmp_path / "out"))}
    expected_ids = {paths[normal[0].name]} | {s.name for s in specs[1:]}
    assert set(rows) == expected_ids
    for spec in specs:
        row = rows.get(spec.name) or rows[paths[spec.name]]
        assert character_error_rate(spec.expected_text(), row["text"]) <= 0.02, row["text"]
    assert [(f.stage, f.video_id) for f in failures] == [("message", None)]
    assert "expected a video URI" in failures[0].reason
    assert {v.video_id for v in result.completed} == expected_ids
    # Produced last, the priority video overtook the queued ones: it is not among the last.
    order = sorted(rows.values(), key=lambda r: r["completed_at"])
    assert [r["video_id"] for r in order].index(urgent.name) < len(order) - 2, [
        (r["video_id"], r["completed_at"]) for r in order
    ]
