"""Record-level ACK mode, source-side dead letters and ``commit_positions`` on a real Ray."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from _udfs import FailOn, RecordingSource, add_one, rows

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestAbort, TestSource

pytestmark = pytest.mark.ray


def _positions(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_ack_mode_commits_each_batch_and_checkpoints_the_acknowledged_prefix(ray_session, tmp_path):
    log = tmp_path / "positions.jsonl"
    source = RecordingSource([rows(25, s) for s in range(0, 200, 25)], log=str(log), offsets=True)
    ckpt = CheckpointConfig(uri=str(tmp_path / "ck"), interval_s=0.2, mode="ack")
    dead = CollectingSink(str(tmp_path / "dead"))
    done: list[int] = []
    result = (
        Pipeline.read(source, batch_size=10)
        .map_batches(FailOn, num_cpus=0.25, fn_constructor_args=(50,))  # ids 49, 99, …
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id="ack", checkpoint=ckpt, dead_letter=dead, on_complete=done.extend, id_column="id"
        )
    )
    out = CollectingSink.read(str(tmp_path / "out"))
    good = [i for i in range(200) if i % 50 != 49]
    assert sorted(done) == good  # completion callbacks in ACK mode: every written id
    assert sorted(out.column("id").to_pylist()) == good
    assert out.column("offset").to_pylist() == good  # offsets are the split's row indexes
    assert result.dead_letters == 4
    assert CollectingSink.read(str(tmp_path / "dead")).num_rows == 4
    # Every write was committed on its own, not once per epoch.
    assert len(CollectingSink.committed_epochs(str(tmp_path / "out"))) >= 20
    # The last checkpoint holds the end of the split, and the source was told so.
    assert _positions(log)[-1] == {"split-000": 8}
    # A rerun finds the split finished and reads nothing.
    again = (
        Pipeline.read(source, batch_size=10)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(job_id="ack", checkpoint=ckpt, dead_letter=dead)
    )
    assert again.rows_in == 0


def test_ack_mode_resumes_after_a_crash_from_the_acknowledged_prefix(ray_session, tmp_path):
    # 200 rows, an idle spell (their acks reach a checkpoint), a crash, 100 more rows.
    items = [*(rows(20, s) for s in range(0, 200, 20)), TestSource.PAUSE(2.0)]
    items += [TestSource.ABORT(run=1), *(rows(20, s) for s in range(200, 300, 20))]
    source = TestSource([*items, TestSource.EOF], offsets=True, unbounded=True)
    ckpt = CheckpointConfig(uri=str(tmp_path / "ck"), interval_s=0.1, mode="ack")
    pipe = (
        Pipeline.read(source, batch_size=20)
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
    )
    with pytest.raises(TestAbort):
        pipe.run(job_id="ack-crash", checkpoint=ckpt)
    written_first = CollectingSink.read(str(tmp_path / "out")).num_rows
    assert written_first == 200  # ACK mode made the output visible as it was written
    second = pipe.run(job_id="ack-crash", checkpoint=ckpt)
    ids = CollectingSink.read(str(tmp_path / "out")).column("id").to_pylist()
    assert set(ids) == set(range(300))  # nothing lost
    # The rerun starts at the acknowledged prefix, not at the beginning; every duplicate
    # is a row read again (at least once), none is a row written twice in one run.
    assert second.restored_from is not None
    assert second.rows_in < 300
    assert len(ids) == written_first + second.rows_in


def test_ack_mode_needs_offsets_and_no_keyed_stage(ray_session, tmp_path):
    ckpt = CheckpointConfig(uri=str(tmp_path / "ck"), mode="ack")
    sink = CollectingSink(str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="offset_column"):
        Pipeline.read(TestSource([rows(5)])).write(sink).run(job_id="a", checkpoint=ckpt)
    keyed = (
        Pipeline.read(TestSource([rows(5)], offsets=True))
        .stateful_map("key", lambda state, row: (state, [row]))
        .write(sink)
    )
    with pytest.raises(ConfigError, match="keyed"):
        keyed.run(job_id="b", checkpoint=ckpt)
    with pytest.raises(ConfigError, match="mode"):
        CheckpointConfig(uri=str(tmp_path / "ck"), mode="exactly")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["epoch", "ack"])
def test_undecodable_records_go_to_the_dead_letters_and_the_job_goes_on(
    ray_session, tmp_path, mode
):
    batch = [{"id": i, "bad": i % 10 == 3} for i in range(40)]
    log = tmp_path / "positions.jsonl"
    source = RecordingSource([batch, [{"id": 99, "bad": True}]], log=str(log), offsets=True)
    result = (
        Pipeline.read(source, batch_size=8)
        .map_batches(add_one, num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
        .run(
            job_id=f"undecodable-{mode}",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ck"), mode=mode),
            dead_letter=CollectingSink(str(tmp_path / "dead")),
        )
    )
    out = CollectingSink.read(str(tmp_path / "out"))
    assert sorted(out.column("id").to_pylist()) == [i for i in range(40) if i % 10 != 3]
    letters = CollectingSink.read(str(tmp_path / "dead")).to_pylist()
    assert sorted(json.loads(d["record"])["id"] for d in letters) == [3, 13, 23, 33, 99]
    assert {d["stage"] for d in letters} == {"source"}
    assert all("cannot decode" in d["error"] for d in letters)
    assert result.dead_letters == 5
    assert _positions(log)[-1] == {"split-000": 2}  # past the undecodable last record


def test_epoch_mode_tells_the_source_each_durable_checkpoint(ray_session, tmp_path):
    log = tmp_path / "positions.jsonl"
    source = RecordingSource(
        [pa.Table.from_pylist(rows(10, s)) for s in range(0, 50, 10)], log=str(log)
    )
    Pipeline.read(source).write(CollectingSink(str(tmp_path / "out"))).run(
        job_id="positions", checkpoint=CheckpointConfig(uri=str(tmp_path / "ck"))
    )
    assert _positions(log)[-1] == {"split-000": 5}
