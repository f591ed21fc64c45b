"""The live demo on a real local Ray: elastic pool, checkpoints, an actor killed mid-run."""

from __future__ import annotations

import pytest

from tideflow.core.checkpoint import CheckpointStore
from tideflow_tools.live_demo import LiveConfig, run_live


@pytest.mark.ray
def test_live_job_survives_an_actor_kill_and_commits_every_row_once(ray_session, tmp_path):
    cfg = LiveConfig(
        duration_s=6.0,
        bursts=((1.0, 4.0),),
        burst_rate=10.0,
        per_batch_s=0.1,
        load_s=0.2,
        max_actors=3,
        checkpoint_s=1.0,
        kill_at_s=2.0,
    )
    result = run_live(cfg, checkpoint_dir=str(tmp_path))

    assert result.batches > 20
    assert result.row_sum == result.expected_row_sum
    assert result.committed_rows == result.rows == result.batches * cfg.rows_per_batch
    assert result.actor_deaths == 1
    assert result.retries >= 1
    store = CheckpointStore(str(tmp_path))
    latest = store.load()
    assert int(latest.checkpoint_id) == result.checkpoints[-1]
    assert latest.states["source"] == {"next_batch": result.batches}
    assert len(store.list()) <= 3  # retention


@pytest.mark.ray
def test_demo_cli_live_part_reports_exact_output(ray_session, tmp_path, capsys):
    from tideflow_tools import demo

    code = demo.main(["--only", "live", "--live-seconds", "4", "--checkpoint-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "output exact" in out
    assert "actor deaths / retries" in out
    assert CheckpointStore(str(tmp_path)).latest() is not None
