"""Faults (acceptance 2): an OCR actor killed mid-shard, and the driver killed with SIGKILL
and run again. Real processes, killed for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from _ocr_driver import JOB, TABLE, app, catalog
from _ocr_processes import ocr_pids

from tideflow.core.checkpoint import CheckpointStore
from tideflow.media.video import shard_plan
from tideflow_ocr import OcrApp, OcrConfig, read_results
from tideflow_ocr.testdata import bench_specs, character_error_rate, make_corpus

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def wait_for(what: str, check, timeout_s: float = 120.0, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def test_an_ocr_actor_killed_mid_shard_is_replaced_and_its_shard_retried(ray_session, tmp_path):
    specs = make_corpus(tmp_path / "videos", bench_specs(4, seconds=6.0, seed=11))
    before = ocr_pids()
    ocr = OcrApp(
        str(tmp_path / "videos"),
        [str(tmp_path / "out")],
        config=OcrConfig(shard_seconds=2.0, ocr_concurrency=(1, 1)),
        state_uri=str(tmp_path / "state"),
        job_id="kill-ocr",
    )
    failures: list = []
    job = ocr.start(on_failure=failures.extend)

    def busy() -> bool:
        assert not job.done(), "the job ended before an OCR actor could be killed"
        ocr_stage = job.progress.stages.get("ocr")
        return ocr_stage is not None and ocr_stage.batches >= 1 and bool(ocr_pids() - before)

    wait_for("the OCR actor to be working", busy)
    victims = ocr_pids() - before
    assert len(victims) == 1
    victim = victims.pop()
    os.kill(victim, signal.SIGKILL)
    replaced: set[int] = set()

    def replacement() -> bool:
        replaced.update(ocr_pids() - before - {victim})
        return bool(replaced) or job.done()

    wait_for("a replacement OCR actor", replacement, every_s=0.02)
    result = job.wait(timeout=240)

    assert replaced, "no new OCR actor took over"
    assert not failures and result.dead_letters == 0
    rows = read_results(str(tmp_path / "out"))
    assert sorted(r["video_id"] for r in rows) == sorted(s.name for s in specs)
    for spec in specs:
        row = next(r for r in rows if r["video_id"] == spec.name)
        assert character_error_rate(spec.expected_text(), row["text"]) <= 0.02, row["text"]
    assert result.stages["ocr"].rows_in >= 4 * 3  # every shard, some of them twice


def test_driver_killed_with_sigkill_then_rerun_writes_each_video_once_and_skips_done_ones(
    ray_session, tmp_path
):
    videos = tmp_path / "videos"
    specs = make_corpus(videos, bench_specs(10, seconds=6.0, seed=5))
    shards_per_video = len(shard_plan(6.0, 2.0))
    from tideflow.streaming.connectors import load_catalog

    load_catalog(**catalog(str(tmp_path)))  # the SQL catalog creates its tables once, here
    script = Path(__file__).with_name("_ocr_driver.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(videos), str(tmp_path)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = CheckpointStore(str(tmp_path / "state" / JOB / "checkpoints"))

    def committed() -> bool:
        assert child.poll() is None, "the driver ended before it could be killed"
        return bool(store.ids()) and bool(read_results(TABLE, catalog=catalog(str(tmp_path))))

    try:
        wait_for("a first video in the table", committed, timeout_s=180, every_s=0.1)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    done_before = {r["video_id"] for r in read_results(TABLE, catalog=catalog(str(tmp_path)))}
    assert 0 < len(done_before) < len(specs), "the driver was not killed mid-run"

    rerun = app(str(videos), str(tmp_path)).run(progress=False)  # type: ignore[attr-defined]

    assert rerun.job.restored_from is not None
    rows = read_results(TABLE, catalog=catalog(str(tmp_path)))
    counts = Counter(r["video_id"] for r in rows)
    assert set(counts) == {s.name for s in specs}
    assert set(counts.values()) == {1}, f"written twice: {[k for k, c in counts.items() if c > 1]}"
    for spec in specs:
        row = next(r for r in rows if r["video_id"] == spec.name)
        assert character_error_rate(spec.expected_text(), row["text"]) <= 0.02
    # Videos already in the table were not OCR'd again: the rerun read only the others'.
    ocr_again = rerun.job.stages["ocr"].rows_in
    assert ocr_again <= (len(specs) - len(done_before)) * shards_per_video, (
        ocr_again,
        done_before,
    )
