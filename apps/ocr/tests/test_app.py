"""The app end to end on the generated corpus: a folder of videos → Iceberg and JSON lines,
on a real local Ray with rapidocr, PyAV and a SQLite Iceberg catalog (acceptance 1 and the
corrupt-video half of 2)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tideflow.media.video import shard_plan
from tideflow_ocr import OcrApp, OcrConfig, VideoFailure, VideoResult, read_results
from tideflow_ocr.testdata import VideoSpec, character_error_rate

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FPS = 1.0


class Run:
    def __init__(self, folder: Path, specs: list[VideoSpec], tmp: Path) -> None:
        self.specs = specs
        self.catalog = {"uri": f"sqlite:///{tmp}/catalog.db", "warehouse": f"{tmp}/warehouse"}
        self.jsonl = str(tmp / "jsonl")
        self.completed: list[list[VideoResult]] = []
        self.failed: list[list[VideoFailure]] = []
        app = OcrApp(
            str(folder),
            ["iceberg://ocr.results", self.jsonl],
            config=OcrConfig(shard_seconds=2.0, fps=FPS, ocr_concurrency=(1, 2)),
            catalog=self.catalog,
            state_uri=str(tmp / "state"),
            job_id="ocr-app",
        )
        self.app = app
        self.result = app.run(
            on_complete=self.completed.append, on_failure=self.failed.append, progress=False
        )
        self.rows = read_results("iceberg://ocr.results", catalog=self.catalog)

    def row(self, name: str) -> dict[str, Any]:
        found = [r for r in self.rows if r["video_id"] == name]
        assert len(found) == 1, f"{name}: {len(found)} rows in the table"
        return found[0]


@pytest.fixture(scope="module")
def run(ray_session, corpus, tmp_path_factory) -> Run:
    folder, specs = corpus
    return Run(folder, specs, tmp_path_factory.mktemp("ocr-app"))


def readable(specs: list[VideoSpec]) -> list[VideoSpec]:
    return [s for s in specs if not s.corrupt and s.truncate is None]


def test_every_readable_video_is_read_with_a_character_error_rate_of_at_most_2_percent(run):
    assert len(readable(run.specs)) >= 2
    for spec in readable(run.specs):
        row = run.row(spec.name)
        cer = character_error_rate(spec.expected_text(), row["text"])
        assert cer <= 0.02, f"{spec.name}: CER {cer:.3f}: {row['text']!r}"
        assert row["status"] == "ok"


def test_segments_start_and_end_within_one_sampling_interval_of_the_truth(run):
    for spec in readable(run.specs):
        segments = run.row(spec.name)["segments"]
        for text, start, end in spec.truth():
            match = [s for s in segments if character_error_rate(text, s["text"]) <= 0.1]
            assert len(match) == 1, f"{spec.name}: {text!r} in {segments}"
            assert abs(match[0]["start_s"] - start) <= 1 / FPS, (spec.name, text, match[0])
            assert abs(match[0]["end_s"] - end) <= 1 / FPS, (spec.name, text, match[0])
        assert len(segments) == len(spec.truth()), f"{spec.name}: extra segments {segments}"


def test_frames_without_text_leave_no_segment(run):
    news = run.row("en-news.mp4")  # 2 s to 3 s shows a moving shape and no text
    assert not [s for s in news["segments"] if s["start_s"] >= 2.0 and s["end_s"] <= 3.0]
    assert news["frames"] == 6 and news["shards"] == 3


def test_a_corrupt_video_goes_to_the_dead_letters_and_the_failure_callback(run):
    failures = [f for batch in run.failed for f in batch]
    corrupt = [f for f in failures if f.video_id == "zz-corrupt.mp4"]
    assert corrupt, failures
    assert corrupt[0].stage == "probe" and "as a video" in corrupt[0].reason
    letters = read_results(run.app.dead_letters)
    assert [r["stage"] for r in letters if r["video_id"] == "zz-corrupt.mp4"] == ["probe"]


def test_a_shard_failing_all_retries_fails_its_video_with_the_reason(run):
    failures = [f for batch in run.failed for f in batch]
    truncated = [f for f in failures if f.video_id == "zz-truncated.mp4"]
    assert len(truncated) == 1, failures
    assert truncated[0].stage == "decode"
    assert "shard 1" in truncated[0].reason or "shard 2" in truncated[0].reason
    letters = [r for r in read_results(run.app.dead_letters) if r["video_id"] == "zz-truncated.mp4"]
    assert len(letters) == 1 and letters[0]["stage"] == "decode"
    assert "zz-truncated.mp4" not in {r["video_id"] for r in run.rows}


def test_the_other_videos_complete_each_reported_once_in_batches(run):
    done = Counter(v.video_id for batch in run.completed for v in batch)
    assert set(done) == {s.name for s in readable(run.specs)}
    assert set(done.values()) == {1}
    assert all(isinstance(batch, list) and batch for batch in run.completed)
    assert {r["video_id"] for r in run.rows} == set(done)


def test_jsonl_output_holds_the_same_results_as_the_iceberg_table(run):
    lines = read_results(run.jsonl)
    assert sorted((r["video_id"], r["text"]) for r in lines) == sorted(
        (r["video_id"], r["text"]) for r in run.rows
    )
    assert all("outcome" not in r for r in lines)


def test_the_job_reports_its_stages(run):
    stages = run.result.job.stages
    assert list(stages) == ["decode", "ocr", "gather", "filter"]
    shards = sum(len(shard_plan(s.duration_s, 2.0)) for s in run.specs if not s.corrupt)
    assert stages["ocr"].rows_in == shards
    assert stages["gather"].rows_out == len(run.specs) - 1  # all but the corrupt one
