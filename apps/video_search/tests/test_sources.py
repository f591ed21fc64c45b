"""Unbounded and remote sources: a Kafka topic of video URIs, a watched folder."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import lance
import pytest

from tideflow.core.errors import ConfigError
from tideflow.streaming.connectors import JobContext
from tideflow.streaming.testing import send_to_topic
from tideflow_video_search.ingest import Ingest, parse_source
from tideflow_video_search.schema import TABLE_NAME
from tideflow_video_search.search import SearchIndex

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.mark.kafka
def test_a_topic_of_uris_is_indexed_and_unreachable_or_bad_ones_are_dead_letters(
    ray_session, kafka_broker, small_corpus, tmp_path
) -> None:
    from _corpus import SMALL_CONFIG

    unreachable = "s3://x:y@no-such-bucket/a.mp4?endpoint_override=127.0.0.1:9&scheme=http"
    messages = [
        str(small_corpus / "slides.mp4").encode(),
        json.dumps({"uri": str(small_corpus / "sidecar.mp4"), "video_id": "sidecar"}).encode(),
        unreachable.encode(),
        b"not a uri at all",
    ]
    send_to_topic(kafka_broker.bootstrap_servers, "vs-videos", messages)
    ingest = Ingest(
        f"kafka://{kafka_broker.bootstrap_servers}/vs-videos",
        tmp_path / "index",
        config=SMALL_CONFIG,
    )
    result = ingest.run(progress=False)

    rows = lance.dataset(str(tmp_path / "index" / TABLE_NAME)).to_table().to_pylist()
    videos = {r["video_id"] for r in rows}
    assert videos == {str(small_corpus / "slides.mp4"), "sidecar"}
    letters = [
        json.loads(line)
        for file in Path(ingest.dead_letters).rglob("*.jsonl")
        for line in file.read_text().splitlines()
    ]
    assert result.job.dead_letters == 2
    errors = " ".join(d["error"] for d in letters)
    assert "no-such-bucket" in errors and "expected a video URI" in errors
    assert ":y@" not in errors, "credentials in a dead letter"


@pytest.mark.kafka
def test_an_ingest_of_a_topic_that_does_not_exist_fails_naming_it(kafka_broker, tmp_path) -> None:
    bs = kafka_broker.bootstrap_servers
    source = parse_source(f"kafka://{bs}/vs-absent")
    ctx = JobContext(job_id="absent", job_uri=str(tmp_path / "job"))

    with pytest.raises(ConfigError, match=f"topic 'vs-absent' not found at {bs}"):
        source.discover(ctx)


@pytest.mark.kafka
def test_a_followed_topic_may_be_created_after_the_ingest_starts(kafka_broker, tmp_path) -> None:
    bs = kafka_broker.bootstrap_servers
    source = parse_source(f"kafka://{bs}/vs-later", follow=True)
    ctx = JobContext(job_id="later", job_uri=str(tmp_path / "job"))
    before = source.discover(ctx)
    send_to_topic(bs, "vs-later", [b"/videos/a.mp4"])

    assert before == []
    assert [s.split_id for s in source.discover(ctx)] == ["vs-later:0"]


def test_a_video_dropped_into_a_followed_folder_becomes_searchable(
    ray_session, small_corpus, tmp_path
) -> None:
    from _corpus import SMALL_CONFIG

    watched = tmp_path / "watched"
    watched.mkdir()
    job = Ingest(str(watched), tmp_path / "index", config=SMALL_CONFIG, follow=True).start()
    try:
        shutil.copy2(small_corpus / "sidecar.mp4", watched / ".sidecar.part")
        shutil.copy2(small_corpus / "sidecar.srt", watched / "sidecar.srt")
        (watched / ".sidecar.part").rename(watched / "sidecar.mp4")
        deadline = time.monotonic() + 120
        hits = []
        while time.monotonic() < deadline and not job.done():
            if (tmp_path / "index" / TABLE_NAME).exists():
                try:
                    index = SearchIndex(tmp_path / "index")
                except ConfigError:  # the table is being created: no committed version yet
                    time.sleep(0.5)
                    continue
                hits = index.search("when did the copper mine close")
                if hits and hits[0].video_id == "sidecar.mp4":
                    break
            time.sleep(0.5)
        assert hits and hits[0].video_id == "sidecar.mp4", hits
    finally:
        job.stop()
    result = job.wait(120)
    assert result.rows_in >= 1
