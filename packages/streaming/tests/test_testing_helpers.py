"""The public test helpers: the scripted TestSource and the CollectingSink (no Ray)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tideflow.core.testing import FakeClock
from tideflow.streaming.connectors import JobContext, SplitReader
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestAbort, TestSource

RUN1 = JobContext(job_id="job", run=1)
RUN2 = JobContext(job_id="job", run=2)


def _t(*ids: int) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


def _reader(source: TestSource, ctx: JobContext = RUN1, split: int = 0, state: Any = None):
    return source.open(source.discover(ctx)[split], state, ctx)


def _ids(reader: SplitReader, max_rows: int = 100, reads: int = 50) -> list[int]:
    """Ids of everything read in ``reads`` calls (stops early once finished)."""
    out: list[int] = []
    for _ in range(reads):
        if reader.finished:
            break
        batch = reader.read(max_rows)
        if batch is not None:
            out += batch.column("id").to_pylist()
    return out


# -- TestSource -----------------------------------------------------------------------------


def test_bounded_source_finishes_with_its_last_batch() -> None:
    reader = _reader(TestSource([_t(1, 2), [{"id": 3}]]))

    assert reader.read(10).column("id").to_pylist() == [1, 2]
    assert reader.read(10).column("id").to_pylist() == [3]
    assert reader.finished


def test_unbounded_source_waits_forever_after_its_last_item() -> None:
    reader = _reader(TestSource([_t(1)], unbounded=True))

    assert _ids(reader) == [1]
    assert reader.read(10) is None
    assert not reader.finished


def test_eof_ends_an_unbounded_stream() -> None:
    reader = _reader(TestSource([_t(1), TestSource.EOF, _t(2)], unbounded=True))

    assert reader.read(10).column("id").to_pylist() == [1]
    assert reader.finished
    assert reader.read(10) is None


def test_abort_fires_only_in_its_run_and_resume_skips_it() -> None:
    source = TestSource([_t(1), TestSource.ABORT(run=1), _t(2)])
    first = _reader(source, RUN1)
    assert first.read(10).column("id").to_pylist() == [1]
    with pytest.raises(TestAbort):
        first.read(10)
    state = json.loads(json.dumps(first.snapshot()))

    assert _ids(_reader(source, RUN2, state=state)) == [2]
    assert _ids(_reader(source, RUN2)) == [1, 2]


def test_abort_for_a_later_run_is_skipped_until_then() -> None:
    source = TestSource([_t(1), TestSource.ABORT(run=2), _t(2)])

    assert _ids(_reader(source, RUN1)) == [1, 2]
    with pytest.raises(TestAbort):
        _ids(_reader(source, RUN2))


def test_pause_returns_no_data_until_its_time_has_passed() -> None:
    clock = FakeClock()
    source = TestSource([_t(1), TestSource.PAUSE(5.0), _t(2)], unbounded=True, clock=clock)
    reader = _reader(source)
    assert reader.read(10).column("id").to_pylist() == [1]

    assert reader.read(10) is None
    clock.advance(4.9)
    assert reader.read(10) is None
    clock.advance(0.1)
    assert reader.read(10).column("id").to_pylist() == [2]


def test_pause_in_a_bounded_source_is_a_slow_read() -> None:
    reader = _reader(TestSource([TestSource.PAUSE(0.01), _t(1)]))

    assert reader.read(10).column("id").to_pylist() == [1]
    assert reader.finished


def test_items_are_dealt_round_robin_and_eof_ends_every_split() -> None:
    items = [_t(0), _t(1), TestSource.ABORT(run=9), _t(3), TestSource.EOF, _t(5)]
    source = TestSource(items, unbounded=True, splits=2)

    assert [s.split_id for s in source.discover(RUN1)] == ["split-000", "split-001"]
    assert _ids(_reader(source, split=0)) == [0]  # 0, ABORT, EOF, (5)
    assert _ids(_reader(source, split=1)) == [1, 3]  # 1, 3, EOF
    assert _reader(source, split=1, state=2).finished  # at its EOF


def test_long_tables_are_cut_to_max_rows_and_resume_mid_table() -> None:
    source = TestSource([_t(*range(7)), _t(7)])
    reader = _reader(source)
    assert reader.read(3).column("id").to_pylist() == [0, 1, 2]
    state = reader.snapshot()

    assert state == {"item": 0, "row": 3}
    assert _ids(_reader(source, state=state), max_rows=3) == [3, 4, 5, 6, 7]


def test_snapshot_is_the_item_index_between_items() -> None:
    reader = _reader(TestSource([_t(0, 1), _t(2)]))
    reader.read(2)

    assert reader.snapshot() == 1
    assert _ids(_reader(TestSource([_t(0, 1), _t(2)]), state=1)) == [2]


def test_bad_items_are_refused_with_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"items\[1\] must be a pyarrow Table"):
        TestSource([_t(1), "oops"])
    with pytest.raises(ConfigError, match="splits"):
        TestSource([], splits=0)


def test_source_and_markers_survive_pickling() -> None:
    source = TestSource([_t(1), TestSource.EOF, TestSource.ABORT(run=2)], unbounded=True)
    copy = pickle.loads(pickle.dumps(source))

    assert copy.items[1] == TestSource.EOF
    assert copy.items[2] == TestSource.ABORT(run=2)
    assert _ids(_reader(copy)) == [1]


# -- CollectingSink -------------------------------------------------------------------------


def test_collecting_sink_orders_rows_by_epoch_writer_and_sequence(tmp_path: Path) -> None:
    sink = CollectingSink(tmp_path)
    w0, w1 = sink.writer(RUN1, 0), sink.writer(RUN1, 1)
    w1.write(1, _t(12))
    w0.write(1, _t(10))
    w0.write(1, _t(11))
    w0.write(2, _t(20))
    p1 = [w0.precommit(1), w1.precommit(1)]
    p2 = [w0.precommit(2), w1.precommit(2)]

    sink.commit(RUN1, 2, p2)
    sink.commit(RUN1, 1, p1)

    assert CollectingSink.read(tmp_path).column("id").to_pylist() == [10, 11, 12, 20]
    assert CollectingSink.committed_epochs(tmp_path) == [1, 2]


def test_collecting_sink_shows_nothing_before_commit_and_commits_once(tmp_path: Path) -> None:
    sink = CollectingSink(tmp_path)
    writer = sink.writer(RUN1, 0)
    writer.write(1, _t(1))
    state = writer.precommit(1)
    assert CollectingSink.read(tmp_path).num_rows == 0

    sink.commit(RUN1, 1, [state])
    sink.commit(RUN1, 1, [state])

    assert CollectingSink.read(tmp_path).column("id").to_pylist() == [1]


def test_collecting_sink_works_across_processes(tmp_path: Path) -> None:
    sink = CollectingSink(tmp_path)
    script = textwrap.dedent(
        """
        import json, pickle, sys
        import pyarrow as pa
        from tideflow.streaming.connectors import JobContext
        sink = pickle.loads(sys.stdin.buffer.read())
        writer = sink.writer(JobContext(job_id="job"), 3)
        writer.write(5, pa.table({"id": [42]}))
        print(json.dumps(writer.precommit(5)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps(sink),
        capture_output=True,
        check=True,
        timeout=60,
    )
    state = json.loads(done.stdout.decode().splitlines()[-1])

    sink.commit(RUN1, 5, [state])

    assert CollectingSink.read(tmp_path).to_pylist() == [{"id": 42}]
    assert CollectingSink.committed_epochs(tmp_path) == [5]
