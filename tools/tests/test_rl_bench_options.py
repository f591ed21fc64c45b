"""The RL benchmarks' pure parts: ``--quick`` fills only the sizes not given; the staleness
ablation's spread over seeds and its note follow the figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}_options", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_quick_staleness_keeps_the_levels_seeds_and_steps_given() -> None:
    args = _load("rl_staleness")._options(["--quick", "--levels", "4", "--seeds", "3"])

    assert (args.levels, args.seeds, args.steps, args.prompts) == ("4", 3, 5, 4)
    quick = _load("rl_staleness")._options(["--quick"])
    assert (quick.levels, quick.seeds, quick.steps) == ("1,2,4", 1, 5)  # every level, small


def test_staleness_sizes_not_given_are_the_full_ones() -> None:
    args = _load("rl_staleness")._options(["--steps", "7"])

    assert (args.steps, args.seeds, args.levels) == (7, 3, "1,2,4")


def test_quick_peer_keeps_the_steps_and_seeds_given() -> None:
    bench = _load("rl_peer")
    args = bench._options(bench._parser(), ["--quick", "--steps", "20", "--seeds", "2"])

    assert (args.steps, args.seeds, args.prompts, args.samples) == (20, 2, 8, 4)


def test_quick_reward_keeps_the_repeats_and_latency_given() -> None:
    args = _load("rl_reward")._options(["--quick", "--repeats", "3", "--reward-latency", "1"])

    assert (args.repeats, args.reward_latency, args.steps, args.reward_workers) == (3, 1.0, 3, 1)


def _run(final: float) -> dict[str, Any]:
    return {
        "final_reward": final,
        "staleness_histogram": {"2": 10},
        "curve": [final],
        "clipfrac": 0.1,
        "behaviour_kl": 0.01,
        "wall_s": 1.0,
    }


def _levels(naive: list[float], decoupled: list[float]) -> tuple[dict[str, Any], dict]:
    runs = {(2, "naive"): [_run(f) for f in naive], (2, "decoupled"): [_run(f) for f in decoupled]}
    return _load("rl_staleness")._by_level(runs, [2], ["naive", "decoupled"])


def test_the_spread_over_seeds_is_the_sample_standard_deviation() -> None:
    by_level, _ = _levels([0.1, 0.2, 0.3], [0.5])

    assert by_level["2"]["naive"]["final_reward_std"] == pytest.approx(0.1)
    assert by_level["2"]["decoupled"]["final_reward_std"] == 0.0  # one seed


@pytest.mark.parametrize(
    ("decoupled", "verdict"),
    [
        (0.5, "that extra movement paid (at staleness 2)."),
        (0.1, "that extra movement did not pay (it hurt at staleness 2)."),
        (0.3, "changed the final reward by no more than 0.02."),
    ],
)
def test_the_notes_verdict_follows_the_figures(decoupled: float, verdict: str) -> None:
    by_level, lag_share = _levels([0.3], [decoupled])

    note = _load("rl_staleness")._note(by_level, lag_share, seeds=1, last=1)

    assert note.endswith(verdict)
