"""The options of ``Pipeline.start``/``run`` are checked before Ray starts, each naming
what it expected (no Ray here: every case is refused before anything runs)."""

from __future__ import annotations

from typing import Any

import pytest
from _udfs import rows

from tideflow.streaming import Pipeline
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestSource


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # 0 let no batch through: the job neither read nor ended.
        ({"queue_limit": 0}, r"queue_limit must be None or an int >= 1; got 0"),
        ({"queue_limit": -2}, r"queue_limit must be None or an int >= 1; got -2"),
        ({"queue_limit": 2.5}, r"queue_limit must be None or an int >= 1; got 2.5"),
        ({"complete_every": True}, r"complete_every must be an int >= 1; got True"),
        ({"on_complete": "index", "id_column": "id"}, r"on_complete must be a function"),
        ({"on_progress": 3}, r"on_progress must be a function; got 3"),
        ({"dead_letter": "/tmp/dead"}, r"dead_letter expects a tideflow.streaming.connectors"),
    ],
)
def test_a_wrong_run_option_is_refused_naming_it(
    tmp_path, options: dict[str, Any], message: str
) -> None:
    pipe = Pipeline.read(TestSource([rows(1)])).write(CollectingSink(str(tmp_path / "o")))

    with pytest.raises(ConfigError, match=message):
        pipe.start(job_id="options", **options)


_REFUSED_BEFORE_RAY = """
import sys
import ray
from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestSource

def same(table):
    return table

out, ckpt = sys.argv[1], sys.argv[2]
pipe = Pipeline.read(TestSource([[{"id": 1}]], offsets=True))
cases = {
    "fused between pools": (
        pipe.map_batches(same).map_batches(same, fused=True).map_batches(same), None
    ),
    "fused in ACK mode": (pipe.map_batches(same, fused=True), "ack"),
}
for name, (stages, mode) in cases.items():
    checkpoint = CheckpointConfig(uri=ckpt, mode=mode) if mode else None
    try:
        stages.write(CollectingSink(out)).start(job_id="early", checkpoint=checkpoint)
    except ConfigError as error:
        print(name, "refused:", str(error).splitlines()[0][:60])
    print(name, "ray started:", ray.is_initialized())
"""


def test_a_misplaced_fused_stage_is_refused_before_ray_starts(tmp_path) -> None:
    import subprocess
    import sys

    # A process of its own: this one may hold the test session's Ray already.
    done = subprocess.run(
        [sys.executable, "-c", _REFUSED_BEFORE_RAY, str(tmp_path / "o"), str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line for line in lines if "ray started" in line] == [
        "fused between pools ray started: False",
        "fused in ACK mode ray started: False",
    ]
    assert sum("refused:" in line for line in lines) == 2
