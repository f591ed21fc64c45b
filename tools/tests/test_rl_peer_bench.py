"""The TRL-vs-Tideflow benchmark: its arithmetic (levels, times, goals) and a quick real run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "rl_peer.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_rl_peer", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _run(bench: ModuleType, method: str, seed: int, rewards: list[float], dt: float) -> object:
    times = [dt * (k + 1) for k in range(len(rewards))]
    return bench.Run(
        method=method, seed=seed, times=times, rewards=rewards, samples=8 * len(rewards)
    )


def test_time_to_level_is_when_the_trailing_mean_first_reaches_it(bench: ModuleType) -> None:
    times = [1.0, 2.0, 3.0, 4.0]
    rewards = [0.0, 1.0, 0.0, 1.0]  # trailing means over 2: 0, 0.5, 0.5, 0.5

    assert bench.time_to_level(times, rewards, 0.5, 2) == 2.0
    assert bench.time_to_level(times, rewards, 0.6, 2) is None
    assert bench.time_to_level(times, rewards, 1.0, 1) == 2.0


def test_a_run_always_reaches_its_own_final_level(bench: ModuleType) -> None:
    rewards = [0.9, 0.1, 0.2, 0.8, 0.3, 0.4]
    level = bench.final_reward(rewards, 3)

    assert level == pytest.approx(0.5)
    assert bench.time_to_level(list(range(6)), rewards, level, 3) is not None


def test_speedup_is_the_peers_time_over_ours_and_zero_when_we_never_get_there(
    bench: ModuleType,
) -> None:
    peer = _run(bench, "trl", 0, [0.2, 0.4, 0.6, 0.6], dt=1.0)
    fast = _run(bench, "tideflow_buffer_2", 0, [0.2, 0.4, 0.6, 0.6], dt=0.5)
    never = _run(bench, "tideflow_buffer_2", 0, [0.2, 0.2, 0.2, 0.2], dt=0.5)

    assert bench.speedup_to_level(peer, fast, 0.6, 1) == (2.0, 3.0, 1.5)
    assert bench.speedup_to_level(peer, never, 0.6, 1)[0] == 0.0


def test_goals_are_missed_when_buffer_1_learns_worse_or_buffer_2_is_not_faster(
    bench: ModuleType,
) -> None:
    runs = [
        _run(bench, "trl", 0, [0.5, 0.6, 0.7, 0.7], dt=1.0),
        _run(bench, "tideflow_buffer_1", 0, [0.5, 0.5, 0.6, 0.6], dt=1.0),
        _run(bench, "tideflow_buffer_2", 0, [0.5, 0.6, 0.7, 0.7], dt=0.8),
    ]

    summary = bench.summarize(runs, window=2)
    goals = bench.goals_of(summary)

    assert summary["methods"]["tideflow_buffer_1"]["final_reward_mean"] == pytest.approx(0.6)
    assert goals["buffer_1_final_reward_minus_trl"].value == pytest.approx(-0.1)
    assert goals["buffer_1_final_reward_minus_trl"].met is False
    assert goals["buffer_2_speedup_to_trl_final_level"].value == pytest.approx(1.25)
    assert goals["buffer_2_speedup_to_trl_final_level"].met is False


@pytest.mark.slow
@pytest.mark.ray
def test_quick_run_writes_both_curves_goals_alignment_and_the_plot(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)]

    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "rl_peer.json").read_text(encoding="utf-8"))
    metrics = result["metrics"]
    assert set(result["goals"]) == {
        "buffer_1_final_reward_minus_trl",
        "buffer_2_speedup_to_trl_final_level",
    }
    assert set(metrics["curves"]) == {
        "trl/seed0",
        "tideflow_buffer_1/seed0",
        "tideflow_buffer_2/seed0",
    }
    assert all(len(curve) == metrics["steps"] for curve in metrics["curves"].values())
    samples = {m["samples"] for m in metrics["methods"].values()}
    assert samples == {metrics["steps"] * metrics["samples_per_step"]}  # equal samples
    assert result["config_alignment"]["matched"]["kl"]["trl.beta"] == 0.0
    for method in ("tideflow_buffer_1", "tideflow_buffer_2"):  # where Tideflow's time goes
        phases = metrics["methods"][method]["phases_s_median"]
        assert set(phases) == {"generate_s", "train_s", "publish_s", "trainer_gap_s", "step_s"}
        assert 0 < phases["train_s"] < phases["step_s"]
    assert (tmp_path / "rl_peer.png").stat().st_size > 0
