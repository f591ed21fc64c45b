"""Issue 18's sections of the streaming benchmark: the split peer and the slow commit.

The figures (overlap bound, Tideflow ÷ split, busy fractions, goals) are pure and tested
on made-up runs; the split peer's service (phase 2) runs here on staged files without Spark
(PySpark is not in the dev group); the slow-commit sink runs in a real Tideflow job.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tideflow_tools.bench import write_result
from tideflow_tools.streaming_bench import RunSpec, run_engine
from tideflow_tools.streaming_bench_report import (
    build_peers,
    overlap_bound,
    slow_commit_figures,
    split_figures,
)
from tideflow_tools.streaming_split import SplitSpec, serve, summarize
from tideflow_tools.streaming_workload import (
    CPU1_ROUNDS,
    cpu_stage_1,
    cpu_stage_2,
    cpu_stages,
    generate_input,
)

ROWS = 2_000


def _split_run(rate: float, cpu_s: float, gpu_s: float, busy_s: float = 8.0) -> dict[str, Any]:
    wall = cpu_s + gpu_s
    return {
        "ok": True,
        "rows_per_s": rate,
        "wall_s": wall,
        "cpu_phase_s": cpu_s,
        "gpu_phase_s": gpu_s,
        "gpu_like_busy_s": busy_s,
        "gpu_like_busy_fraction": 0.95,
    }


def _tideflow_run(rate: float, stage_busy: float = 0.9, wall_s: float = 10.0) -> dict[str, Any]:
    return {
        "ok": True,
        "rows_per_s": rate,
        "wall_s": wall_s,
        "gpu_like_busy_s": 8.0,
        "gpu_like_busy_fraction": stage_busy,
        "engine_metrics": {
            "stage_busy_fraction": {"cpu_stage_1": 0.3, "GpuLike": stage_busy},
            "checkpoint_durations_s": [0.01, 0.02],
        },
    }


def test_overlap_bound_is_the_sum_of_the_phases_over_the_longer_one() -> None:
    assert overlap_bound(8.0, 8.0) == pytest.approx(2.0)
    assert overlap_bound(4.0, 8.0) == pytest.approx(1.5)
    assert overlap_bound(0.0, 8.0) is None
    assert overlap_bound(None, 8.0) is None


def test_split_figures_take_medians_and_compare_the_ratio_with_the_bound() -> None:
    split = [_split_run(1_000, 9.0, 8.0), _split_run(1_100, 8.0, 8.0), _split_run(900, 10.0, 8.0)]
    tideflow = [_tideflow_run(1_700), _tideflow_run(1_800), _tideflow_run(1_600)]

    figures = split_figures(tideflow, split, batches=400)

    assert figures["tideflow_over_split"] == pytest.approx(1.7)
    assert figures["cpu_phase_s"] == 9.0
    assert figures["overlap_bound"] == pytest.approx(17 / 9, abs=1e-4)
    assert figures["share_of_bound"] == pytest.approx(1.7 / (17 / 9), abs=1e-3)
    assert figures["cpu_phase_per_batch_ms"] == pytest.approx(22.5)
    assert figures["gpu_like_busy_of_wall"] == {
        "tideflow": 0.8,
        "split": pytest.approx(8 / 17, abs=1e-4),
    }


def test_slow_commit_goal_is_the_change_of_the_gpu_like_stage_busy_fraction() -> None:
    instant = [_tideflow_run(20_000, 0.96), _tideflow_run(19_000, 0.94)]
    slow = [_tideflow_run(15_000, 0.93), _tideflow_run(14_000, 0.91)]

    slow_commit = slow_commit_figures(instant, slow)
    _, goals, notes = build_peers({}, slow_commit)

    assert slow_commit["instant"]["stage_busy_fraction"] == pytest.approx(0.95)
    assert slow_commit["busy_fraction_change_pct"] == pytest.approx(-3.158, abs=1e-3)
    assert slow_commit["throughput_change_pct"] == pytest.approx(-25.641, abs=1e-3)
    goal = goals["slow_commit_busy_fraction_diff_pct"]
    assert goal.value == pytest.approx(3.158, abs=1e-3)
    assert (goal.target, goal.met) == ("≤ 5.0", True)
    assert "split_balanced_share_of_bound" in notes  # not run: written as missed


def test_failed_split_runs_write_the_split_goal_as_missed_with_the_reason(tmp_path: Path) -> None:
    failed = {"ok": False, "error": "pyspark is not installed: `make bench-streaming` …"}
    balanced = split_figures([_tideflow_run(1_000)], [failed], batches=40)
    metrics, goals, notes = build_peers(
        {"balanced": balanced}, slow_commit_figures([failed], [failed])
    )

    path = write_result(tmp_path, "streaming", metrics=metrics, goals=goals, goal_notes=notes)
    document = json.loads(path.read_text(encoding="utf-8"))

    assert document["goals"]["split_balanced_share_of_bound"] == {
        "value": 0.0,
        "target": "≥ 0.9",
        "met": False,
    }
    assert "pyspark is not installed" in document["goal_notes"]["split_balanced_share_of_bound"]
    assert document["goals"]["slow_commit_busy_fraction_diff_pct"]["met"] is False


def test_cpu_stages_keep_the_reference_functions_and_scale_the_first_one() -> None:
    assert cpu_stages() == (cpu_stage_1, cpu_stage_2)
    heavier, _ = cpu_stages(CPU1_ROUNDS * 2)
    table = pa.table({"id": [0], "payload": ["ab"]})
    assert heavier(table).column_names == cpu_stage_1(table).column_names
    assert heavier(table).column("digest") != cpu_stage_1(table).column("digest")


def test_split_service_consumes_the_staged_files_once_the_job_succeeded(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    generate_input(staged, rows=ROWS, rows_per_file=700)  # batches cross file boundaries
    (staged / "_SUCCESS").touch()
    spec = SplitSpec(
        input_dir=str(tmp_path / "input"),
        staging_dir=str(staged),
        output_dir=str(tmp_path / "out"),
        busy_log=str(tmp_path / "busy.log"),
        rows=ROWS,
        gpu_latency_s=0.001,
    )

    service = serve(spec, deadline=time.time() + 30)
    spark = {"ok": True, "boot": service["ready"], "started": service["ready"], "ended": 0.0}
    figures = summarize(spec, {**spark, "ended": service["started"]}, {"ok": True, **service})

    assert figures["ok"], figures["error"]
    assert figures["output"]["exact"]
    assert figures["gpu_like_batches"] == 4
    assert figures["gpu_like_rows"] == ROWS
    written = pq.read_table(tmp_path / "out" / "part-00000.parquet")
    assert written.column_names == ["id", "payload", "check"]


@pytest.mark.ray
def test_slow_commit_sink_writes_every_row_once(ray_session: None, tmp_path: Path) -> None:
    generate_input(tmp_path / "input", rows=ROWS, rows_per_file=500)
    spec = RunSpec(
        engine="tideflow",
        input_dir=str(tmp_path / "input"),
        output_dir=str(tmp_path / "out"),
        busy_log=str(tmp_path / "busy.log"),
        rows=ROWS,
        checkpoint_dir=str(tmp_path / "ckpt"),
        checkpoint_interval_s=0.2,
        commit_delay_s=0.3,
        gpu=False,
    )

    record = run_engine(spec)

    assert record["ok"], record.get("traceback")
    assert record["output"]["exact"]
    assert record["wall_s"] >= 0.3  # at least the last commit's sleep
