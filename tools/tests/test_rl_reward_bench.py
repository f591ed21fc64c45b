"""The served reward model benchmark's quick mode: exact scores, both arms, the JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "rl_reward.py"

pytestmark = pytest.mark.ray


def _bench():
    spec = importlib.util.spec_from_file_location("bench_rl_reward", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_scores_exactly_and_measures_both_arms(ray_session, tmp_path: Path) -> None:
    assert _bench().main(["--quick", "--out", str(tmp_path)]) == 0

    result = json.loads((tmp_path / "rl_reward.json").read_text())
    metrics, goals = result["metrics"], result["goals"]
    assert metrics["exact"]["samples"] == 12
    assert metrics["exact"]["call_sizes"] == [8, 4]  # 12 samples in calls of at most 8
    assert metrics["exact"]["distinct_scores"] > 1
    assert goals["max_abs_diff"]["met"] is True and goals["max_abs_diff"]["value"] <= 1e-5
    for arm in ("pool", "inline"):
        assert len(metrics["runs"][arm]) == 1
        assert 0.0 <= metrics[arm]["trainer_idle_ratio"] <= 1.0
        assert metrics[arm]["reward_s_mean"] > 0
    assert goals["inline_minus_pool_idle_ratio"]["target"] == "> 0"
