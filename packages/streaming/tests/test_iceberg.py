"""Iceberg connectors against a real SQL catalog (SQLite) and local warehouse.

The contract tests drive sources and sinks directly (no Ray); the pipeline tests run a
real job with checkpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import (
    IcebergSink,
    IcebergSource,
    JobContext,
    ParquetSource,
    Source,
    Split,
    load_catalog,
)
from tideflow.streaming.errors import ConfigError, SinkError, SourceError

SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string())])


def _rows(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({"id": ids, "text": [f"r{i}" for i in ids]}, schema=SCHEMA)


@pytest.fixture
def catalog(tmp_path: Path) -> dict[str, str]:
    return {"uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": str(tmp_path / "wh")}


def _table(catalog: dict[str, str], appends: list[pa.Table], name: str = "db.t") -> Any:
    cat = load_catalog(**catalog)
    cat.create_namespace_if_not_exists(name.split(".", maxsplit=1)[0])
    table = cat.create_table(name, schema=SCHEMA)
    for rows in appends:
        table.append(rows)
    return table


def _ctx(tmp_path: Path, job_id: str = "job", run: int = 1) -> JobContext:
    return JobContext(job_id=job_id, run=run, job_uri=str(tmp_path / "jobs" / job_id))


def _read_all(source: Source, ctx: JobContext, max_rows: int = 7) -> list[int]:
    ids: list[int] = []
    for split in source.discover(ctx):
        reader = source.open(split, None, ctx)
        while (batch := reader.read(max_rows)) is not None:
            ids += batch.column("id").to_pylist()
        reader.close()
    return ids


def _stage(sink: IcebergSink, ctx: JobContext, epochs: dict[int, pa.Table]) -> dict[int, Any]:
    writer = sink.writer(ctx, 0)
    states = {}
    for epoch, rows in epochs.items():
        writer.write(epoch, rows)
        states[epoch] = json.loads(json.dumps(writer.precommit(epoch)))
    writer.close()
    return states


# -- catalogs -------------------------------------------------------------------------------


def test_load_catalog_defaults_to_sqlite_in_the_warehouse(tmp_path):
    cat = load_catalog(warehouse=str(tmp_path / "wh"))
    cat.create_namespace("db")
    assert (tmp_path / "wh" / "catalog.db").exists()
    assert type(cat).__name__ == "SqlCatalog"


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"type": "nessie"}, r"unknown type; expected one of \['sql', 'rest'"),
        ({"type": "rest"}, r"needs uri="),
        ({"type": "sql", "warehouse": "s3://bucket/wh"}, r"remote warehouse .* needs uri="),
        ({"uri": "postgresql+psycopg2://me:hunter2@127.0.0.1:1/db"}, r"cannot be opened"),
    ],
)
def test_catalog_configuration_errors_are_clear_and_hide_secrets(properties, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        load_catalog("cfg", **properties)
    assert "hunter2" not in str(info.value)
    assert "'cfg'" in str(info.value)


def test_connectors_need_a_namespaced_table_and_stay_picklable(catalog):
    import pickle

    with pytest.raises(ConfigError, match=r'"namespace.table"'):
        IcebergSink("plain", catalog=catalog)
    secret = {**catalog, "s3.secret-access-key": "s3cr3t-Sw0rdfish"}
    sink = pickle.loads(pickle.dumps(IcebergSink("db.t", catalog=secret)))
    assert "s3cr3t" not in repr(sink)
    assert sink.catalog == secret


# -- sink -----------------------------------------------------------------------------------


def test_sink_commits_an_epoch_once_even_when_committed_twice(tmp_path, catalog):
    ctx = _ctx(tmp_path)
    sink = IcebergSink("db.out", catalog=catalog)
    states = _stage(sink, ctx, {1: _rows(0, 10)})

    sink.commit(ctx, 1, [states[1]])
    sink.commit(ctx, 1, [states[1]])

    table = load_catalog(**catalog).load_table("db.out")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(10))
    (snapshot,) = table.snapshots()
    assert snapshot.summary["tideflow.job_id"] == "job"
    assert snapshot.summary["tideflow.epoch"] == "1"


def test_a_crash_between_append_and_cleanup_does_not_append_again(tmp_path, catalog):
    ctx = _ctx(tmp_path)
    sink = IcebergSink("db.out", catalog=catalog)
    states = _stage(sink, ctx, {1: _rows(0, 10), 2: _rows(10, 5)})
    staging = next((tmp_path / "jobs").glob("job/iceberg-staging/*"))
    kept = tmp_path / "kept"
    shutil.copytree(staging, kept)

    sink.commit(ctx, 1, [states[1]])
    sink.commit(ctx, 2, [states[2]])
    shutil.rmtree(staging)
    shutil.copytree(kept, staging)  # the staging came back: the clean-up never ran
    sink.commit(ctx, 2, [states[2]])

    table = load_catalog(**catalog).load_table("db.out")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(15))
    assert [s.summary["tideflow.epoch"] for s in table.snapshots()] == ["1", "2"]
    assert not any(staging.iterdir())


def test_an_epoch_left_staged_is_published_before_the_next(tmp_path, catalog):
    ctx = _ctx(tmp_path)
    sink = IcebergSink("db.out", catalog=catalog)
    states = _stage(sink, ctx, {1: _rows(0, 3), 2: _rows(3, 3)})

    sink.commit(ctx, 2, [states[2]])  # epoch 1's commit never happened

    table = load_catalog(**catalog).load_table("db.out")
    assert [s.summary["tideflow.epoch"] for s in table.snapshots()] == ["1", "2"]
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(6))


def test_recover_removes_the_epochs_after_the_checkpoint(tmp_path, catalog):
    ctx = _ctx(tmp_path)
    sink = IcebergSink("db.out", catalog=catalog)
    _stage(sink, ctx, {1: _rows(0, 3), 2: _rows(3, 3), 3: _rows(6, 3)})
    staging = next((tmp_path / "jobs").glob("job/iceberg-staging/*"))

    sink.recover(_ctx(tmp_path, run=2), 1)

    assert sorted(p.name for p in staging.iterdir()) == ["epoch-000001"]


def test_a_fresh_job_reusing_a_committed_job_id_fails(tmp_path, catalog):
    ctx = _ctx(tmp_path)
    sink = IcebergSink("db.out", catalog=catalog)
    sink.commit(ctx, 1, [_stage(sink, ctx, {1: _rows(0, 3)})[1]])

    with pytest.raises(SinkError, match=r"already holds its epochs up to 1: was the job id reused"):
        sink.recover(ctx, None)


def test_rows_that_do_not_fit_the_table_are_refused_with_the_mismatch(tmp_path, catalog):
    _table(catalog, [_rows(0, 3)], name="db.out")
    writer = IcebergSink("db.out", catalog=catalog).writer(_ctx(tmp_path), 0)
    bad = pa.table({"id": ["x"], "text": ["y"], "extra": [1]})

    with pytest.raises(SinkError) as info:
        writer.write(1, bad)
    text = str(info.value)
    assert "'db.out'" in text
    assert "column 'id' is string, the table has int64" in text
    assert "columns ['extra'] are not in the table" in text


def test_narrower_types_and_missing_optional_columns_are_accepted(tmp_path, catalog):
    _table(catalog, [], name="db.out")
    ctx = _ctx(tmp_path)
    sink = IcebergSink("db.out", catalog=catalog)
    narrow = pa.table({"id": pa.array([1, 2], pa.int32())})
    sink.commit(ctx, 1, [_stage(sink, ctx, {1: narrow})[1]])

    rows = load_catalog(**catalog).load_table("db.out").scan().to_arrow().to_pylist()
    assert rows == [{"id": 1, "text": None}, {"id": 2, "text": None}]


# -- source ---------------------------------------------------------------------------------


def test_bounded_source_resumes_mid_file_without_skipping_or_repeating(tmp_path, catalog):
    _table(catalog, [_rows(0, 20), _rows(20, 15), _rows(35, 12)])
    source = IcebergSource("db.t", catalog=catalog, files_per_split=3)
    ctx = _ctx(tmp_path)
    (split,) = source.discover(ctx)
    reader = source.open(split, None, ctx)
    first = [reader.read(8) for _ in range(4)]  # into the second file
    state = json.loads(json.dumps(reader.snapshot()))
    reader.close()

    resumed = source.open(split, state, ctx)
    rest = []
    while (batch := resumed.read(8)) is not None:
        rest.append(batch)
    assert resumed.finished
    ids = [i for b in first + rest if b is not None for i in b.column("id").to_pylist()]
    assert sorted(ids) == list(range(47))
    assert state["part"] == 1


def test_bounded_source_pins_its_snapshot_for_reruns(tmp_path, catalog):
    table = _table(catalog, [_rows(0, 5)])
    source = IcebergSource("db.t", catalog=catalog, files_per_split=1)
    first = source.discover(_ctx(tmp_path))
    table.append(_rows(5, 5))

    again = source.discover(_ctx(tmp_path, run=2))

    assert again == first
    assert sorted(_read_all(source, _ctx(tmp_path))) == list(range(5))
    assert sorted(_read_all(source, _ctx(tmp_path, job_id="other"))) == list(range(10))


def test_sources_at_different_snapshots_read_their_own_rows(tmp_path, catalog):
    table = _table(catalog, [_rows(0, 5), _rows(5, 5)])
    old, new = (s.snapshot_id for s in table.snapshots())

    at_old = IcebergSource("db.t", catalog=catalog, snapshot_id=old)
    at_new = IcebergSource("db.t", catalog=catalog, snapshot_id=new)

    assert sorted(_read_all(at_old, _ctx(tmp_path, "a"))) == list(range(5))
    assert sorted(_read_all(at_new, _ctx(tmp_path, "b"))) == list(range(10))


def test_bounded_source_reads_only_the_chosen_columns(tmp_path, catalog):
    _table(catalog, [_rows(0, 3)])
    source = IcebergSource("db.t", catalog=catalog, columns=["text"])
    ctx = _ctx(tmp_path)
    (split,) = source.discover(ctx)
    batch = source.open(split, None, ctx).read(10)
    assert batch is not None and batch.column_names == ["text"]


def test_source_errors_name_the_table(tmp_path, catalog):
    source = IcebergSource("db.missing", catalog=catalog)
    with pytest.raises(SourceError, match=r"IcebergSource\('db.missing'.*no such table"):
        source.discover(_ctx(tmp_path))
    _table(catalog, [_rows(0, 3)])
    split = IcebergSource("db.t", catalog=catalog).discover(_ctx(tmp_path))[0]
    with pytest.raises(SourceError, match=r"cannot resume from"):
        IcebergSource("db.t", catalog=catalog).open(split, {"part": "x"}, _ctx(tmp_path))


def _drain(reader: Any, max_rows: int, limit: int | None = None) -> list[int]:
    ids: list[int] = []
    while limit is None or len(ids) < limit:
        batch = reader.read(max_rows)
        if batch is None:
            break
        ids += batch.column("id").to_pylist()
    return ids


def test_incremental_source_reads_each_append_once_across_a_resume(tmp_path, catalog):
    table = _table(catalog, [_rows(0, 10), _rows(10, 10)])
    source = IcebergSource("db.t", catalog=catalog, unbounded=True, poll_interval_s=0.01)
    ctx = _ctx(tmp_path)
    (split,) = source.discover(ctx)
    reader = source.open(split, None, ctx)
    seen = _drain(reader, 4, limit=12)  # into the second snapshot
    state = json.loads(json.dumps(reader.snapshot()))
    assert state["snapshot_id"] == table.snapshots()[0].snapshot_id
    assert state["next"] == table.snapshots()[1].snapshot_id

    resumed = source.open(split, state, ctx)
    seen += _drain(resumed, 4)
    table.append(_rows(20, 5))
    table.delete("id < 3")  # a delete adds no rows
    table.append(_rows(25, 5))
    seen += _drain(resumed, 4)

    assert not resumed.finished
    assert seen == list(range(30))


def test_incremental_source_from_latest_reads_only_new_appends(tmp_path, catalog):
    table = _table(catalog, [_rows(0, 10)])
    source = IcebergSource(
        "db.t", catalog=catalog, unbounded=True, start="latest", poll_interval_s=0.01
    )
    ctx = _ctx(tmp_path)
    (split,) = source.discover(ctx)
    table.append(_rows(10, 4))

    again = source.discover(_ctx(tmp_path, run=2))  # the start stays pinned
    assert _drain(source.open(again[0], None, ctx), 100) == list(range(10, 14))
    assert split == again[0]


# -- pipelines ------------------------------------------------------------------------------


def _tag(table: pa.Table) -> pa.Table:
    return table.append_column("len", pa.array([len(t) for t in table.column("text").to_pylist()]))


@pytest.mark.ray
def test_parquet_through_a_pipeline_into_iceberg_exactly_once(ray_session, tmp_path, catalog):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        pq.write_table(_rows(i * 250, 250), src / f"part-{i}.parquet", row_group_size=50)
    pipe = (
        Pipeline.read(ParquetSource(str(src), files_per_group=1), batch_size=100)
        .map_batches(_tag, num_cpus=0.25)
        .write(IcebergSink("out.tagged", catalog=catalog))
    )
    ckpt = CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.5)

    result = pipe.run(job_id="to-iceberg", checkpoint=ckpt, progress=False)
    pipe.run(job_id="to-iceberg", checkpoint=ckpt, progress=False)  # finished: nothing new

    table = load_catalog(**catalog).load_table("out.tagged")
    rows = table.scan().to_arrow()
    assert sorted(rows.column("id").to_pylist()) == list(range(1000))
    assert rows.column("len").to_pylist() == [len(t) for t in rows.column("text").to_pylist()]
    epochs = [int(s.summary["tideflow.epoch"]) for s in table.snapshots()]
    assert epochs == sorted(set(epochs))
    assert set(epochs) <= set(result.committed_epochs)


@pytest.mark.ray
def test_iceberg_snapshot_through_a_pipeline(ray_session, tmp_path, catalog):
    _table(catalog, [_rows(i * 100, 100) for i in range(5)])
    out = IcebergSink("out.copy", catalog=catalog)
    Pipeline.read(IcebergSource("db.t", catalog=catalog, files_per_split=2), batch_size=64).write(
        out
    ).run(job_id="copy", checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.5))

    rows = load_catalog(**catalog).load_table("out.copy").scan().to_arrow()
    assert sorted(rows.column("id").to_pylist()) == list(range(500))


def test_splits_of_a_snapshot_are_stable(tmp_path, catalog):
    _table(catalog, [_rows(i, 1) for i in range(5)])
    source = IcebergSource("db.t", catalog=catalog, files_per_split=2)
    splits = source.discover(_ctx(tmp_path))
    assert [len(s.info["files"]) for s in splits] == [2, 2, 1]
    assert all(isinstance(s, Split) for s in splits)


@pytest.mark.ray
def test_a_job_that_aborts_then_reruns_writes_each_row_once(ray_session, tmp_path, catalog):
    from tideflow.streaming.testing import TestSource

    items: list[Any] = [_rows(i * 50, 50) for i in range(12)]
    items.insert(8, TestSource.ABORT(run=1))
    pipe = Pipeline.read(TestSource(items), batch_size=50).write(
        IcebergSink("out.once", catalog=catalog)
    )
    ckpt = CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.2, retain=50)
    with pytest.raises(Exception, match=r"TestAbort|abort"):
        pipe.run(job_id="once", checkpoint=ckpt, progress=False)
    rerun = pipe.run(job_id="once", checkpoint=ckpt, progress=False)

    assert rerun.run == 2
    ids = load_catalog(**catalog).load_table("out.once").scan().to_arrow().column("id")
    assert sorted(ids.to_pylist()) == list(range(600))
