"""The Kafka latency benchmark: a ``--quick`` run end to end, and the shape of its JSON.

The bench starts its own broker and its own Ray, so it runs as a child process (as
``make bench-kafka_latency`` does); nothing here depends on timings.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tideflow_tools.kafka_latency import percentile, step_figures

BENCH = Path(__file__).resolve().parents[1] / "bench" / "kafka_latency.py"
PATHS = {
    "iceberg_epoch": ("iceberg", "epoch"),
    "kafka_epoch": ("kafka", "epoch"),
    "kafka_ack": ("kafka", "ack"),
}


def test_percentile_interpolates_and_is_nan_when_empty():
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)
    assert math.isnan(percentile([], 50))


def test_a_step_whose_latency_keeps_rising_is_not_sustained():
    ids = range(90)
    steady = {i: (i * 0.01, i * 0.01 + 0.3) for i in ids}
    rising = {i: (i * 0.01, i * 0.01 + 0.3 + i * 0.05) for i in ids}
    produced = {"sent": 90, "rate": 100.0}

    def figures(seen: dict[int, tuple[float, float]], rate: float = 100) -> dict:
        return step_figures(
            rate=rate,
            produced=produced,
            ids=ids,
            seen=seen,
            interval_s=1.0,
            lag_at_end=0,
            drain_s=0.1,
        )

    assert figures(steady)["sustained"] is True
    assert figures(steady)["p50_ms"] == pytest.approx(300, abs=1)
    assert figures(rising)["sustained"] is False
    assert "latency rose" in figures(rising)["why_not"]
    partial = figures({i: steady[i] for i in range(80)})
    assert partial["sustained"] is False and partial["visible"] == 80
    assert figures(steady, rate=1000)["producer_kept_rate"] is False
    nothing = figures({})
    assert nothing["p50_ms"] is None and nothing["sustained"] is False


@pytest.mark.kafka
@pytest.mark.slow
def test_quick_run_writes_the_result_schema(tmp_path):
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "max sustained" in run.stdout

    result = json.loads((tmp_path / "kafka_latency.json").read_text())
    assert result["name"] == "kafka_latency"
    assert {"cores", "memory_gib", "gpu"} <= result["machine"].keys()
    assert result["setup"]["quick"] is True
    assert isinstance(result["goals"], dict)
    for goal in result["goals"].values():
        assert isinstance(goal["met"], bool) and isinstance(goal["value"], float)
    metrics = result["metrics"]
    assert set(metrics["paths"]) == set(PATHS)
    assert metrics["max_sustained_rate"].keys() == metrics["paths"].keys()
    for name, (sink, mode) in PATHS.items():
        path = metrics["paths"][name]
        assert (path["sink"], path["checkpoint_mode"]) == (sink, mode)
        assert path["steps"], f"{name}: no rate step ran"
        assert path["reference_rate"] == result["setup"]["rates_msg_s"][0]
        for step in path["steps"]:
            assert 0 <= step["visible"] <= step["produced"]
            assert isinstance(step["sustained"], bool)
            assert isinstance(step["produced_rate"], float)
            if step["visible"]:
                assert 0 < step["p50_ms"] <= step["p99_ms"] <= step["max_ms"]
            else:
                assert step["p50_ms"] is None and step["sustained"] is False
        assert path["max_sustained_rate"] in (None, *result["setup"]["rates_msg_s"])
