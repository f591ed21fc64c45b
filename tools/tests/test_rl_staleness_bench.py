"""The stale-sample ablation's quick mode: real lag, both objectives, the JSON and the plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "rl_staleness.py"

pytestmark = pytest.mark.ray


def _bench():
    spec = importlib.util.spec_from_file_location("bench_rl_staleness", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_ablation_trains_both_objectives_on_samples_two_versions_old(
    ray_session, tmp_path: Path
) -> None:
    assert _bench().main(["--quick", "--out", str(tmp_path)]) == 0

    result = json.loads((tmp_path / "rl_staleness.json").read_text())
    assert set(result["metrics"]["levels"]) == {"1", "2", "4"}
    level = result["metrics"]["levels"]["2"]
    for objective in ("naive", "decoupled"):
        arm = level[objective]
        assert len(arm["curves"]) == 1 and len(arm["curves"][0]) == 5  # one seed, 5 steps
        assert arm["final_reward_std"] == 0.0
        lags = arm["staleness_histogram"]
        # 5 batches of 16 samples; batch 0 has no older weights to lag behind, and rollout
        # (faster than training here) runs up to 2 versions ahead, never more
        assert sum(lags.values()) == 80 and lags["0"] >= 16
        assert set(lags) <= {"0", "1", "2"} and lags.get("2", 0) > 0
    assert level["max_lag_seen"] == 2
    goals = result["goals"]
    assert goals["share_at_lag_2"]["target"] == "≥ 0.5"
    assert goals["share_at_lag_2"]["value"] == level["share_of_samples_at_this_lag"]
    assert isinstance(goals["decoupled_minus_naive_at_4"]["met"], bool)  # the stalest level
    assert "quick" in result["note"]
    assert (tmp_path / "rl_staleness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
