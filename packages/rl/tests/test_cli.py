"""The ``tideflow-rl`` command: a Ctrl-C while Ray starts exits 130 with nothing left running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tideflow.core.testing import CTRL_C_WHILE_RAY_STARTS


def test_ctrl_c_while_ray_starts_exits_130_and_leaves_no_ray_process(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # a model folder as far as the CLI checks
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {{path: {model}}}\n")
    driver = CTRL_C_WHILE_RAY_STARTS + (
        "from tideflow.rl.cli import main\nfinish(main(sys.argv[1:]))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", driver, "train", str(config), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert "raylet started" in done.stderr, done.stderr[-3000:]
    assert done.returncode == 130, done.stderr[-3000:]
    assert "tideflow-rl: interrupted" in done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []  # no gcs_server, raylet, …
