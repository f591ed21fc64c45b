"""The streaming part of the demo, on small generated data and the shared local Ray."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from tideflow_tools.streaming_demo import DemoData, gather_video, run_streaming_part


def test_gather_emits_a_video_once_when_all_its_frames_arrived():
    state = None
    emitted = []
    for frame in range(4):
        state, out = gather_video(
            state, {"video_id": "v", "shard": frame % 2, "caption_len": 3}, expected=4
        )
        emitted.append(out)
    assert emitted[:3] == [None, None, None]
    assert emitted[3] == {"video_id": "v", "frames": 4, "shards": 2, "caption_chars": 12}
    assert state is None  # forgotten once complete


@pytest.mark.ray
def test_streaming_demo_writes_each_video_once_and_the_rerun_writes_nothing(ray_session, tmp_path):
    console = Console(record=True, width=120)
    data = DemoData(videos=6, shards=2, frames=20, rows_per_file=60)
    assert run_streaming_part(console, workdir=tmp_path, data=data)
    out = pq.read_table(str(tmp_path / "output"))
    assert sorted(out.column("video_id").to_pylist()) == [f"v{v:04d}" for v in range(6)]
    text = console.export_text()
    assert "exactly once — exact" in text
    assert "wrote 0" in text  # the rerun resumed and wrote nothing new
