"""Every code example of the documentation site runs (docs/examples/*.py, small data).

The pages include these files with ``--8<--``, so what a reader copies is what runs here. Each
example runs in this process as ``__main__`` (its functions reach Ray's workers by value, as a
user's script's would), on the one local Ray session the tools' tests share; each ends with
its own ``assert`` on what it produced.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
# Examples that need no Ray (pure policies, the checkpoint store, configuration only).
WITHOUT_RAY = {"autoscaler", "checkpoints", "cluster_render", "kafka_secure"}


def _examples() -> list[str]:
    return sorted(path.stem for path in EXAMPLES.glob("*.py"))


def test_docs_examples_are_found() -> None:
    assert {"quickstart", "files", "kafka", "iceberg", "lance", "llm", "rl"} <= set(_examples())


@pytest.mark.parametrize("name", _examples())
def test_docs_example_runs(name: str, request: pytest.FixtureRequest) -> None:
    if name not in WITHOUT_RAY:
        request.getfixturevalue("ray_session")
    runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
