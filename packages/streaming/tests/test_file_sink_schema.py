"""A file sink's output directory keeps one schema: rows are cast to it when that is safe,
and rows that do not fit stop the job with an error naming the sink, the column and both
types, before any of them is written (a directory of two schemas no longer reads back as one
dataset). The fitting rules are tested on their own first, then through the sinks, then in
pipelines on a real local Ray."""

from __future__ import annotations

import datetime
import decimal
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.connectors import JobContext, JSONLSink, ParquetSink
from tideflow.streaming.connectors._schema_fit import Mismatch, conform, mismatches
from tideflow.streaming.connectors.files._one_schema import OneSchemaFileSink
from tideflow.streaming.errors import ConfigError, SinkError
from tideflow.streaming.testing import TestSource

RUN_1 = JobContext(job_id="job", run=1)
RUN_2 = JobContext(job_id="job", run=2)
INT64 = pa.schema([("id", pa.int64()), ("v", pa.int64())])


def _table(ids: range, v: pa.Array | None = None, **columns: Any) -> pa.Table:
    values = v if v is not None else pa.array(list(ids), pa.int64())
    return pa.table({"id": pa.array(list(ids), pa.int64()), "v": values, **columns})


def _texts(ids: range) -> pa.Table:
    return _table(ids, pa.array([f"#{i}" for i in ids]))


def _commit(sink: OneSchemaFileSink, ctx: JobContext, epoch: int, *tables: pa.Table) -> None:
    """A new writer of run ``ctx.run`` writes ``tables`` as ``epoch``, which is committed."""
    writer = sink.writer(ctx, 0)
    for table in tables:
        writer.write(epoch, table)
    state = writer.precommit(epoch)
    writer.close()
    sink.commit(ctx, epoch, [state])


def _published(out: Path, extension: str) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_file() and p.suffix == extension)


def _parquet_schemas(out: Path) -> set[pa.Schema]:
    return {pq.read_schema(p).remove_metadata() for p in _published(out, ".parquet")}


def _jsonl_rows(out: Path) -> list[dict[str, Any]]:
    files = _published(out, ".jsonl")
    return [json.loads(line) for p in files for line in p.read_text().splitlines()]


# -- the fitting rules, without a sink --------------------------------------------------------


def test_a_narrower_integer_fits_and_is_cast_to_the_output_type() -> None:
    table = _table(range(3), pa.array([0, 1, 2], pa.int32()))

    assert mismatches(table.schema, INT64) == []
    out = conform("sink", table, INT64)
    assert out.schema == INT64
    assert out.column("v").to_pylist() == [0, 1, 2]


def test_a_missing_nullable_column_is_null_and_columns_take_the_output_order() -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.int64()), ("note", pa.string())])
    table = pa.table({"v": [7], "id": [1]})

    assert mismatches(table.schema, schema) == []
    assert conform("sink", table, schema).to_pylist() == [{"id": 1, "v": 7, "note": None}]


def test_text_where_an_int_was_is_a_mismatch_naming_the_column_and_both_types() -> None:
    (problem,) = mismatches(_texts(range(2)).schema, INT64)

    assert problem == Mismatch("v", "int64", "string")
    assert str(problem) == "column 'v': expected int64, found string"


def test_a_new_column_a_missing_required_one_and_a_narrowing_are_mismatches() -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.int32())])
    table = pa.table({"v": pa.array([1], pa.int64()), "extra": ["x"]})

    assert mismatches(table.schema, schema) == [
        Mismatch("id", "int64 not null", None),
        Mismatch("v", "int32", "int64"),
        Mismatch("extra", None, "string"),
    ]


def test_a_column_of_nulls_and_a_dictionary_fit_their_value_type() -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    table = pa.table({"id": pa.nulls(2, pa.null()), "v": pa.array(["a", "b"]).dictionary_encode()})

    assert mismatches(table.schema, schema) == []
    assert conform("sink", table, schema).to_pylist() == [
        {"id": None, "v": "a"},
        {"id": None, "v": "b"},
    ]


def test_lists_of_only_nulls_and_structs_with_fewer_fields_fit() -> None:
    point = pa.struct([("x", pa.int64()), ("y", pa.int64())])
    schema = pa.schema([("points", pa.list_(point)), ("at", point)])
    table = pa.table(
        {
            "points": pa.array([[], None], pa.list_(pa.null())),
            "at": pa.array([{"x": 1}, None], pa.struct([("x", pa.int32())])),
        }
    )

    assert mismatches(table.schema, schema) == []
    assert conform("sink", table, schema).to_pylist() == [
        {"points": [], "at": {"x": 1, "y": None}},
        {"points": None, "at": None},
    ]


def test_a_value_that_does_not_convert_raises_naming_the_sink_and_column() -> None:
    schema = pa.schema([("big", pa.int64())])
    table = pa.table({"big": pa.array([2**63], pa.uint64())})  # the type fits, the value not

    assert mismatches(table.schema, schema) == []
    with pytest.raises(SinkError, match=r"^ParquetSink\('/out'\): .*column 'big': expected int64"):
        conform("ParquetSink('/out')", table, schema)


def test_jsonl_types_are_those_a_reader_infers_from_the_written_text() -> None:
    nested = pa.struct([("xs", pa.list_(pa.int32())), ("at", pa.timestamp("s"))])
    written = pa.schema(
        [
            ("i", pa.int8()),
            ("f", pa.float32()),
            *[(f"t{i}", t) for i, t in enumerate([pa.binary(), pa.date32(), pa.decimal128(5, 2)])],
            ("nested", nested),
        ]
    )

    assert JSONLSink("/out").reader_schema(written) == pa.schema(
        [
            ("i", pa.int64()),
            ("f", pa.float64()),
            *[(f"t{i}", pa.string()) for i in range(3)],
            ("nested", pa.struct([("xs", pa.list_(pa.int64())), ("at", pa.string())])),
        ]
    )


# -- through the sinks' writers ---------------------------------------------------------------


def test_parquet_sink_refuses_text_where_it_wrote_ints_and_stages_none_of_it(
    tmp_path: Path,
) -> None:
    sink = ParquetSink(tmp_path)
    writer = sink.writer(RUN_1, 0)
    writer.write(1, _table(range(3)))
    sink.commit(RUN_1, 1, [writer.precommit(1)])

    with pytest.raises(SinkError) as error:
        writer.write(2, _texts(range(3, 6)))

    message = str(error.value)
    assert message.startswith(f"ParquetSink({str(tmp_path)!r}): rows do not fit")
    assert "column 'v': expected int64, found string" in message
    assert "fixed by the first rows it wrote" in message
    assert writer.precommit(2) == {"files": []}
    assert _parquet_schemas(tmp_path) == {INT64}


def test_parquet_sink_casts_int32_rows_after_int64_ones(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    writer = sink.writer(RUN_1, 0)
    writer.write(1, _table(range(3)))
    sink.commit(RUN_1, 1, [writer.precommit(1)])
    writer.write(2, _table(range(3, 6), pa.array([3, 4, 5], pa.int32())))  # a new file
    sink.commit(RUN_1, 2, [writer.precommit(2)])

    assert len(_published(tmp_path, ".parquet")) == 2
    assert _parquet_schemas(tmp_path) == {INT64}
    assert ds.dataset(tmp_path).to_table().column("v").to_pylist() == list(range(6))


def test_parquet_sink_on_a_rerun_keeps_the_schema_of_the_published_files(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    _commit(sink, RUN_1, 1, _table(range(3)))

    _commit(sink, RUN_2, 2, _table(range(3, 6), pa.array([3, 4, 5], pa.int32())))
    with pytest.raises(SinkError, match="fixed by the files already in its directory") as error:
        _commit(sink, RUN_2, 3, _texts(range(6, 9)))

    assert "column 'v': expected int64, found string" in str(error.value)
    assert _parquet_schemas(tmp_path) == {INT64}


def test_parquet_sink_schema_argument_fixes_the_output_and_is_validated(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "a", schema=INT64)
    _commit(sink, RUN_1, 1, _table(range(3), pa.array([0, 1, 2], pa.int32())))
    other = pa.schema([("id", pa.int64()), ("v", pa.string())])

    assert _parquet_schemas(tmp_path / "a") == {INT64}
    with pytest.raises(SinkError, match=r"schema= .* differs from the files already in its dir"):
        ParquetSink(tmp_path / "a", schema=other).writer(RUN_2, 0).write(2, _texts(range(1)))
    with pytest.raises(ConfigError, match=r"ParquetSink\.schema must be None or a pyarrow\.Schema"):
        ParquetSink(tmp_path, schema={"v": "int64"})
    with pytest.raises(ConfigError, match="more than once"):
        JSONLSink(tmp_path, schema=pa.schema([("v", pa.int64()), ("v", pa.string())]))


def test_jsonl_sink_refuses_text_where_a_published_file_has_ints(tmp_path: Path) -> None:
    sink = JSONLSink(tmp_path)
    kinds = {
        "blob": pa.array([b"\x00"] * 3),
        "day": pa.array([datetime.date(2026, 12, 6)] * 3),
        "price": pa.array([decimal.Decimal("1.50")] * 3),
        "sparse": pa.nulls(3, pa.string()),  # reads back as null from the text
    }
    _commit(sink, RUN_1, 1, _table(range(3), **kinds))
    # A rerun: text values read back as strings, int32 as int64, the sparse column takes a
    # type; all fit.
    sparse = pa.array(["x", None, "y"])
    narrow = pa.array([3, 4, 5], pa.int32())
    _commit(sink, RUN_2, 2, _table(range(3, 6), narrow, **{**kinds, "sparse": sparse}))

    with pytest.raises(SinkError) as error:
        _commit(sink, RUN_2, 3, _texts(range(6, 9)))

    assert str(error.value).startswith(f"JSONLSink({str(tmp_path)!r}): rows do not fit")
    assert "column 'v': expected int64, found string" in str(error.value)
    assert [r["v"] for r in _jsonl_rows(tmp_path)] == list(range(6))


def test_jsonl_sink_refuses_text_where_it_wrote_ints_in_the_same_file(tmp_path: Path) -> None:
    writer = JSONLSink(tmp_path).writer(RUN_1, 0)
    writer.write(1, _table(range(3)))

    with pytest.raises(SinkError, match="column 'v': expected int64, found string"):
        writer.write(1, _texts(range(3, 6)))
    writer.close()


def test_a_schema_error_names_the_sink_without_its_credentials(s3_server, s3_bucket) -> None:
    sink = ParquetSink(s3_server.uri(s3_bucket, "out"))
    writer = sink.writer(RUN_1, 0)
    writer.write(1, _table(range(2)))

    with pytest.raises(SinkError) as error:
        writer.write(1, _texts(range(2, 4)))
    writer.close()

    assert str(error.value).startswith(f"{sink!r}: rows do not fit")
    assert "***" in str(error.value)
    assert s3_server.secret_key not in str(error.value)


# -- in pipelines, on a real local Ray ----------------------------------------------------------


def _source(batches: int, *, pause_at: int) -> TestSource:
    """``batches`` batches of 10 rows ``{"id": i, "v": i}``, with a pause (in which the job
    checkpoints and commits what it read) before batch ``pause_at``."""
    items: list[Any] = [
        [{"id": i, "v": i} for i in range(s, s + 10)] for s in range(0, batches * 10, 10)
    ]
    items.insert(pause_at, TestSource.PAUSE(1.0))
    return TestSource([*items, TestSource.EOF], unbounded=True)


def _ckpt(tmp_path: Path) -> CheckpointConfig:
    return CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.2, max_batches=1)


def _v_as(type_: pa.DataType, from_id: int):
    """A batch function that casts column ``v`` to ``type_`` in batches from ``from_id`` on."""

    def v_as(table: pa.Table) -> pa.Table:
        if pc.min(table.column("id")).as_py() < from_id:
            return table
        index = table.schema.get_field_index("v")
        return table.set_column(index, "v", table.column("v").cast(type_))

    return v_as


@pytest.mark.ray
def test_a_function_turning_ints_to_text_stops_the_job_and_a_fixed_rerun_writes_once(
    ray_session, tmp_path
):
    out = tmp_path / "out"
    turned = Pipeline.read(_source(6, pause_at=3), batch_size=10).map_batches(
        _v_as(pa.string(), 30), num_cpus=0.25
    )
    with pytest.raises(SinkError, match="column 'v': expected int64, found string"):
        turned.write(ParquetSink(str(out))).run(job_id="drift", checkpoint=_ckpt(tmp_path))

    before = ds.dataset(out).to_table()  # what run 1 committed: one dataset, ints only
    assert before.schema.field("v").type == pa.int64()
    assert sorted(before.column("id").to_pylist()) == list(range(30))
    fixed = Pipeline.read(_source(6, pause_at=3), batch_size=10).map_batches(
        _v_as(pa.int32(), 30), num_cpus=0.25
    )
    rerun = fixed.write(ParquetSink(str(out))).run(job_id="drift", checkpoint=_ckpt(tmp_path))

    assert rerun.run == 2
    assert _parquet_schemas(out) == {INT64}
    assert sorted(ds.dataset(out).to_table().column("id").to_pylist()) == list(range(60))


@pytest.mark.ray
def test_int32_batches_after_int64_ones_are_written_in_one_schema(ray_session, tmp_path):
    out = tmp_path / "out"
    result = (
        Pipeline.read(_source(4, pause_at=2), batch_size=10)
        .map_batches(_v_as(pa.int32(), 20), num_cpus=0.25)
        .write(ParquetSink(str(out)))
        .run(job_id="narrow", checkpoint=_ckpt(tmp_path))
    )

    assert result.rows_out == 40
    assert len(_published(out, ".parquet")) > 1  # a file per epoch: batches of both types
    assert _parquet_schemas(out) == {INT64}
    assert sorted(ds.dataset(out).to_table().column("v").to_pylist()) == list(range(40))


@pytest.mark.ray
def test_a_rerun_keeps_the_schema_its_first_run_published(ray_session, tmp_path):
    out = tmp_path / "out"
    narrow = [_table(range(s, s + 10), pa.array(range(s, s + 10), pa.int32())) for s in (20, 30)]
    source = TestSource(
        [
            *[_table(range(s, s + 10)) for s in (0, 10)],
            TestSource.PAUSE(1.0),  # run 1 checkpoints and commits the int64 rows
            TestSource.ABORT(run=1),
            *narrow,  # only run 2 reads these: its writer never sees an int64 batch
            TestSource.EOF,
        ],
        unbounded=True,
    )
    pipe = Pipeline.read(source, batch_size=10).write(ParquetSink(str(out)))
    with pytest.raises(Exception, match=r"TestAbort|abort"):
        pipe.run(job_id="resume", checkpoint=_ckpt(tmp_path))
    rerun = pipe.run(job_id="resume", checkpoint=_ckpt(tmp_path))

    assert (rerun.run, rerun.rows_in) == (2, 20)
    assert _parquet_schemas(out) == {INT64}
    assert sorted(ds.dataset(out).to_table().column("id").to_pylist()) == list(range(40))


@pytest.mark.ray
def test_a_function_turning_ints_to_text_stops_a_jsonl_job(ray_session, tmp_path):
    out = tmp_path / "out"
    pipe = (
        Pipeline.read(_source(4, pause_at=2), batch_size=10)
        .map_batches(_v_as(pa.string(), 20), num_cpus=0.25)
        .write(JSONLSink(str(out)))
    )
    with pytest.raises(SinkError, match=r"JSONLSink\(.*column 'v': expected int64, found string"):
        pipe.run(job_id="drift", checkpoint=_ckpt(tmp_path))

    written = _jsonl_rows(out)  # what run 1 committed
    assert sorted(r["id"] for r in written) == list(range(20))
    assert all(isinstance(r["v"], int) for r in written)
