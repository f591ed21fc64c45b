"""``tools/gpu_check.sh`` part one with the CPU in CUDA's place: the script itself runs its
checks (not only ``tools/gpu_check_part1.py``), on a machine without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "gpu_check.sh"


def _run(*args: str, out: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "TIDEFLOW_PYTHON": sys.executable}
    if out is not None:
        env["TIDEFLOW_GPU_OUT"] = str(out)
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_part_one_runs_its_checks_on_the_cpu_with_device_cpu(tmp_path: Path) -> None:
    done = _run("--part", "one", "--device", "cpu", out=tmp_path, timeout=280)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks within tolerance" in done.stdout
    result = json.loads((tmp_path / "gpu_check_part1.json").read_text(encoding="utf-8"))
    assert result["device"] == "cpu" and result["ok"] is True
    assert {"step.loss_abs", "engine.greedy_match_after_load"} <= {
        c["check"] for c in result["checks"]
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--part", "two", "--device", "cpu"], "part two needs a CUDA GPU"),
        (["--device", "tpu"], "--device must be cuda, cuda:N or cpu; got 'tpu'"),
        (["--part", "three"], "--part must be one, two or all; got 'three'"),
        (["--parts", "one"], "unknown argument '--parts'"),
    ],
)
def test_a_bad_argument_exits_2_and_says_what_is_allowed(args: list[str], expected: str) -> None:
    done = _run(*args)

    assert done.returncode == 2
    assert expected in done.stderr
