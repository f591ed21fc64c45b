"""Parallel sink writers (``write(sink, writers=n)``): routing without Ray, and jobs on a
real local Ray that write one output with two writers, exactly once across a rerun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from _udfs import SlowParquetSink, rows

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming._operators.write import SinkWriters
from tideflow.streaming.connectors import KafkaSink, ParquetSink
from tideflow.streaming.connectors._staged import parse_final
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import TestSource


class _Method:
    def __init__(self, calls: list[Any], who: int, name: str) -> None:
        self.calls, self.who, self.name = calls, who, name

    def remote(self, *args: Any) -> tuple[Any, ...]:
        ref = (self.name, self.who, *args)
        self.calls.append(ref)
        return ref


class FakeWriter:
    def __init__(self, calls: list[Any], who: int) -> None:
        self.write = _Method(calls, who, "write")
        self.precommit = _Method(calls, who, "precommit")


def test_writes_go_to_the_least_busy_writer_and_every_writer_precommits():
    calls: list[Any] = []
    writers = SinkWriters([FakeWriter(calls, 0), FakeWriter(calls, 1), FakeWriter(calls, 2)])
    a = writers.write(1, "a")
    b = writers.write(1, "b")
    writers.write(1, "c")
    assert [c[1] for c in calls] == [0, 1, 2]  # spread while all are busy
    writers.done(b)
    writers.write(1, "d")
    assert calls[-1][1] == 1  # writer 1 finished first: it gets the next batch
    writers.done(a)
    writers.done("not a write")  # ignored
    assert writers.outstanding == [0, 1, 1]
    assert writers.precommit(1) == [("precommit", 0, 1), ("precommit", 1, 1), ("precommit", 2, 1)]


def test_writers_are_checked(tmp_path):
    pipe = Pipeline.read(TestSource([rows(1)]))
    with pytest.raises(ConfigError, match="writers must be an int >= 1"):
        pipe.write(ParquetSink(str(tmp_path / "o")), writers=0)
    with pytest.raises(ConfigError, match="takes one writer"):
        pipe.write(KafkaSink(topic="t", bootstrap_servers="127.0.0.1:1"), writers=2)
    with pytest.raises(ValueError, match="at least one writer"):
        SinkWriters([])


def _writers_of(out: Path) -> set[int]:
    found = set()
    for path in out.glob("*.parquet"):
        parsed = parse_final(path.name)
        assert parsed is not None, path
        found.add(parsed[1])
    return found


@pytest.mark.ray
def test_two_writers_write_one_output_exactly_once(ray_session, tmp_path):
    source = TestSource([rows(20, start) for start in range(0, 400, 20)])
    pipe = (
        Pipeline.read(source, batch_size=20)
        .map_batches(lambda t: t, num_cpus=0.25, name="pass")
        .write(SlowParquetSink(str(tmp_path / "out")), writers=2)
    )
    ckpt = CheckpointConfig(uri=str(tmp_path / "ck"), max_batches=5)
    first = pipe.run(job_id="two-writers", checkpoint=ckpt)
    again = pipe.run(job_id="two-writers", checkpoint=ckpt)
    table = pq.read_table(str(tmp_path / "out"))
    assert sorted(table.column("id").to_pylist()) == list(range(400))
    assert (first.rows_out, again.rows_out) == (400, 0)
    assert _writers_of(tmp_path / "out") == {0, 1}  # both wrote files of their own


@pytest.mark.ray
def test_ack_mode_refuses_several_writers(ray_session, tmp_path):
    pipe = Pipeline.read(TestSource([rows(4)], offsets=True)).write(
        ParquetSink(str(tmp_path / "out")), writers=2
    )
    with pytest.raises(ConfigError, match="one writer"):
        pipe.run(
            job_id="ack-writers",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck"), mode="ack"),
        )
