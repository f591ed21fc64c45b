"""The streaming benchmark: the Ray Data half on a tiny input, and the result file's shape.

The shared test session (``ray_session``) declares no GPU, so the Ray Data run here gives
the GPU-like stage no GPU request (``RunSpec(gpu=False)``: ``num_cpus=0``, ``num_gpus=0``,
still an actor pool of one); the bench itself runs each engine in a fresh
``ray.init(num_gpus=1)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tideflow_tools.bench import write_result
from tideflow_tools.streaming_bench import RunSpec, run_engine
from tideflow_tools.streaming_bench_report import build, crash_figures, format_table
from tideflow_tools.streaming_workload import (
    BusyInterval,
    busy_fraction,
    check_output,
    generate_input,
    read_busy_log,
)

ROWS = 4_000


@pytest.fixture(scope="module")
def ray_data_run(
    ray_session: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunSpec, dict[str, Any]]:
    work = tmp_path_factory.mktemp("streaming-bench")
    generate_input(work / "input", rows=ROWS, rows_per_file=1_000)
    spec = RunSpec(
        engine="ray_data",
        input_dir=str(work / "input"),
        output_dir=str(work / "out"),
        busy_log=str(work / "busy.log"),
        rows=ROWS,
        gpu=False,
    )
    return spec, run_engine(spec)


@pytest.mark.ray
def test_ray_data_writes_every_input_row_exactly_once(
    ray_data_run: tuple[RunSpec, dict[str, Any]],
) -> None:
    _, record = ray_data_run
    assert record["ok"], record.get("traceback")
    assert record["output"] == {
        "rows": ROWS,
        "missing": 0,
        "duplicates": 0,
        "files": record["output"]["files"],
        "exact": True,
    }
    assert record["rows_per_s"] > 0


@pytest.mark.ray
def test_gpu_like_stage_logs_every_batch_of_at_most_500_rows(
    ray_data_run: tuple[RunSpec, dict[str, Any]],
) -> None:
    spec, _ = ray_data_run
    intervals = read_busy_log(spec.busy_log)
    assert sum(i.rows for i in intervals) == ROWS
    assert max(i.rows for i in intervals) <= 500
    assert all(i.end - i.start >= 0.019 for i in intervals)
    assert 0 < busy_fraction(intervals) <= 1


@pytest.mark.ray
def test_result_file_writes_failed_tideflow_goals_as_missed(
    ray_data_run: tuple[RunSpec, dict[str, Any]], tmp_path: Path
) -> None:
    _, record = ray_data_run
    failed = {"ok": False, "error": "ImportError: no ParquetSource"}
    runs = {"ray_data": record, "ray_data_ckpt": record, "tideflow": failed}
    runs["tideflow_ckpt"] = failed
    crash = {"tideflow": crash_figures(failed, {}, first_output={}, rows=ROWS)}
    metrics, goals, notes = build(runs, crash, rows=ROWS)

    path = write_result(tmp_path, "streaming", metrics=metrics, goals=goals, goal_notes=notes)
    document = json.loads(path.read_text(encoding="utf-8"))

    assert {"name", "machine", "metrics", "goals"} <= document.keys()
    assert document["goals"] == {
        "throughput_ratio_ckpt_on": {"value": 0.0, "target": "≥ 1.3", "met": False},
        "checkpoint_overhead_pct": {"value": 0.0, "target": "≤ 3.0", "met": False},
        "gpu_busy_fraction": {"value": 0.0, "target": "≥ 0.97", "met": False},
    }
    assert "ImportError" in document["goal_notes"]["gpu_busy_fraction"]
    assert document["metrics"]["tideflow_ckpt"]["error"] == failed["error"]
    assert document["metrics"]["crash_resume"]["tideflow"]["ok"] is False
    assert "FAILED" in format_table(metrics, goals)


def test_goals_compare_tideflow_with_checkpoints_to_the_better_ray_data_run() -> None:
    def run(rate: float, busy: float = 0.9) -> dict[str, Any]:
        return {"ok": True, "rows_per_s": rate, "gpu_like_busy_fraction": busy}

    runs = {
        "ray_data": run(10_000),
        "ray_data_ckpt": run(12_000),
        "tideflow": run(20_000),
        "tideflow_ckpt": run(19_800, busy=0.97),
    }
    _, goals, notes = build(runs, {}, rows=ROWS)

    assert goals["throughput_ratio_ckpt_on"].value == pytest.approx(1.65)
    assert goals["checkpoint_overhead_pct"].value == pytest.approx(1.0)
    assert all(goal.met for goal in goals.values())
    assert notes == {}


def test_crash_figures_count_rows_done_twice_and_flag_duplicates() -> None:
    killed = {"killed_after_s": 5.0, "gpu_like_rows": 2_500}
    resume = {
        "ok": True,
        "gpu_like_rows": 2_000,
        "output": {"rows": 4_100, "missing": 0, "duplicates": 100, "exact": False},
    }
    figures = crash_figures(killed, resume, first_output={"from_restart_s": 1.5}, rows=ROWS)

    assert figures["rerun_gpu_like_rows"] == 2_000
    assert figures["rows_processed_twice"] == 500
    assert figures["first_output_after_restart_s"] == 1.5
    assert figures["ok"] is False
    assert "100 duplicate" in figures["error"]


def test_check_output_finds_missing_and_duplicate_ids(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": pa.array([0, 1, 1], pa.int64())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": pa.array([3], pa.int64())}), tmp_path / "_tmp.parquet")

    check = check_output(tmp_path, expected_rows=3)

    assert (check.rows, check.missing, check.duplicates, check.files) == (3, 1, 1, 1)


def test_busy_fraction_is_busy_time_over_the_span() -> None:
    intervals = [BusyInterval(0.0, 1.0, 500), BusyInterval(2.0, 4.0, 500)]
    assert busy_fraction(intervals) == pytest.approx(0.75)
