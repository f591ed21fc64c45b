"""SIGKILL the ingest (driver and its Ray) mid-run, run the same command again: in the end
every row is in the table exactly once, the same rows an uninterrupted ingest writes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import lance
import pytest

from tideflow_video_search.schema import TABLE_NAME

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _command(videos, index) -> list[str]:
    # The flags of _corpus.SMALL_CONFIG: the same rows as the `indexed` fixture's ingest.
    return [
        sys.executable, "-m", "tideflow_video_search.cli", "--log-level", "error",
        "ingest", str(videos), "--index", str(index), "--no-progress",
        "--shard-seconds", "4", "--whisper-model", "tiny.en", "--speech-language", "en",
        "--checkpoint-interval", "1", "--ocr-pool", "1,2", "--speech-pool", "1",
    ]  # fmt: skip


def _versions(index) -> int:
    try:
        return len(lance.dataset(str(index / TABLE_NAME)).versions())
    except (ValueError, OSError):
        return 0


def _keys(index) -> list[tuple[str, str, float, str]]:
    rows = lance.dataset(str(index / TABLE_NAME)).to_table().to_pylist()
    return [(r["video_id"], r["source"], r["start_s"], r["language"]) for r in rows]


def test_killed_twice_and_rerun_every_row_is_written_once(indexed, tmp_path) -> None:
    index = tmp_path / "index"
    rng = random.Random(17)
    kills = 0
    while kills < 2:
        before = _versions(index)
        child = subprocess.Popen(
            _command(indexed.videos, index),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 240
            # Kill once this run has committed something new, a random moment later.
            while _versions(index) <= before and child.poll() is None:
                assert time.monotonic() < deadline, "no commit within 240 s"
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                kills += 1
            child.wait()
        if child.returncode == 0:
            break  # it finished before the kill: nothing left to interrupt
    done = subprocess.run(
        _command(indexed.videos, index), capture_output=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    keys = _keys(index)
    twice = [k for k, n in Counter(keys).items() if n > 1]
    assert not twice, twice
    assert sorted(keys) == sorted(_keys(indexed.index))
