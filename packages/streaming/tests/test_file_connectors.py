"""File sources and sinks, driven directly through the connector contracts (no Ray)."""

from __future__ import annotations

import gzip
import json
import traceback
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from tideflow.streaming.connectors import (
    JobContext,
    JSONLSink,
    JSONLSource,
    ParquetSink,
    ParquetSource,
    Source,
    Split,
)
from tideflow.streaming.connectors._fs import redact
from tideflow.streaming.connectors._staged import StagedFileSink
from tideflow.streaming.errors import ConfigError, SinkError, SourceError
from tideflow.streaming.testing import CollectingSink

CTX = JobContext(job_id="job", run=1)


SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string())])


def _rows(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({"id": ids, "text": [f"r{i}" for i in ids]}, schema=SCHEMA)


def _parquet_dir(root: Path, sizes: list[int], *, row_group: int = 7) -> pa.Table:
    """One Parquet file per size (row groups of ``row_group`` rows); returns all rows."""
    root.mkdir(parents=True, exist_ok=True)
    start, parts = 0, []
    for i, n in enumerate(sizes):
        table = _rows(start, n)
        pq.write_table(table, root / f"part-{i:03d}.parquet", row_group_size=row_group)
        parts.append(table)
        start += n
    return pa.concat_tables(parts)


def _jsonl_dir(root: Path, sizes: list[int]) -> pa.Table:
    root.mkdir(parents=True, exist_ok=True)
    start, parts = 0, []
    for i, n in enumerate(sizes):
        table = _rows(start, n)
        lines = "".join(json.dumps(r) + "\n" for r in table.to_pylist())
        (root / f"part-{i:03d}.jsonl").write_text(lines)
        parts.append(table)
        start += n
    return pa.concat_tables(parts)


def _drain(source: Source, split: Split, state: Any, max_rows: int, limit: int | None = None):
    """Read up to ``limit`` batches (all when None); return (batches, snapshot, finished)."""
    reader = source.open(split, state, CTX)
    batches = []
    while (limit is None or len(batches) < limit) and not reader.finished:
        batch = reader.read(max_rows)
        if batch is None:
            break
        assert 1 <= batch.num_rows <= max_rows
        batches.append(batch)
    snapshot = json.loads(json.dumps(reader.snapshot()))  # states travel as JSON
    finished = reader.finished
    reader.close()
    return batches, snapshot, finished


def _concat(batches: list[pa.Table]) -> list[dict[str, Any]]:
    return [row for b in batches for row in b.to_pylist()]


# -- discovery ------------------------------------------------------------------------------


def test_discover_groups_sorted_files_and_skips_hidden_ones(tmp_path: Path) -> None:
    _parquet_dir(tmp_path / "in", [1, 1, 1, 1])
    _parquet_dir(tmp_path / "in" / "sub", [1])
    for hidden in ["_SUCCESS", ".part.crc", "_staging/job/x.parquet", "sub/_tmp/y.parquet"]:
        (tmp_path / "in" / hidden).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / hidden).write_bytes(b"not data")

    splits = ParquetSource(str(tmp_path / "in"), files_per_group=2).discover(CTX)

    names = [
        [Path(f).relative_to(tmp_path / "in").as_posix() for f in s.info["files"]] for s in splits
    ]
    assert [s.split_id for s in splits] == ["group-000000", "group-000001", "group-000002"]
    assert names == [
        ["part-000.parquet", "part-001.parquet"],
        ["part-002.parquet", "part-003.parquet"],
        ["sub/part-000.parquet"],
    ]


def test_discover_is_stable_across_calls(tmp_path: Path) -> None:
    _parquet_dir(tmp_path, [1] * 5)
    source = ParquetSource(tmp_path, files_per_group=3)
    assert source.discover(CTX) == source.discover(CTX)


def test_discover_accepts_a_single_file_and_a_path_prefix(tmp_path: Path) -> None:
    _parquet_dir(tmp_path, [1, 1, 1])
    (tmp_path / "other.parquet").write_bytes(b"x")

    single = ParquetSource(f"file://{tmp_path}/part-001.parquet").discover(CTX)
    prefix = ParquetSource(str(tmp_path / "part-00")).discover(CTX)

    assert [s.info["files"] for s in single] == [[f"{tmp_path}/part-001.parquet"]]
    assert [Path(f).name for f in prefix[0].info["files"]] == [
        "part-000.parquet",
        "part-001.parquet",
        "part-002.parquet",
    ]


def test_discover_of_nothing_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no file, directory or path prefix"):
        ParquetSource(str(tmp_path / "missing")).discover(CTX)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="files_per_group"):
        ParquetSource("x", files_per_group=0)
    with pytest.raises(ConfigError, match="batch_rows"):
        JSONLSource("x", batch_rows=-1)
    with pytest.raises(ConfigError, match="rows_per_file"):
        ParquetSink("x", rows_per_file=0)


# -- reading and resuming -------------------------------------------------------------------


def test_reader_returns_bounded_batches_in_order_and_finishes_with_the_last(
    tmp_path: Path,
) -> None:
    whole = _parquet_dir(tmp_path, [13, 0, 20])
    source = ParquetSource(tmp_path, files_per_group=8)
    (split,) = source.discover(CTX)

    batches, snapshot, finished = _drain(source, split, None, max_rows=5)

    assert _concat(batches) == whole.to_pylist()
    assert [b.num_rows for b in batches] == [5, 5, 3, 5, 5, 5, 5]  # never mixes two files
    assert finished
    assert snapshot == {"file": 3, "row": 0, "path": None}


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_resume_after_any_batch_continues_exactly(tmp_path: Path, fmt: str) -> None:
    # 13 and 20 rows in row groups of 7, batches of 5: every resume point lands mid row
    # group, on row-group and file boundaries, and next to an empty file.
    sizes = [13, 0, 20, 7]
    if fmt == "parquet":
        whole = _parquet_dir(tmp_path, sizes)
        source: Source = ParquetSource(tmp_path, files_per_group=8)
    else:
        whole = _jsonl_dir(tmp_path, sizes)
        source = JSONLSource(tmp_path, files_per_group=8, block_size=1024)
    (split,) = source.discover(CTX)
    total = len(_drain(source, split, None, max_rows=5)[0])

    for k in range(total + 1):
        first, state, _ = _drain(source, split, None, max_rows=5, limit=k)
        rest, _, finished = _drain(source, split, state, max_rows=3)  # batch size may change
        assert _concat(first + rest) == whole.to_pylist(), f"resume after {k} batches"
        assert finished


def test_resume_at_the_end_is_finished_at_once(tmp_path: Path) -> None:
    _parquet_dir(tmp_path, [4])
    source = ParquetSource(tmp_path)
    (split,) = source.discover(CTX)
    _, state, _ = _drain(source, split, None, max_rows=10)

    reader = source.open(split, state, CTX)

    assert reader.finished
    assert reader.read(10) is None


def test_resume_refuses_a_changed_listing(tmp_path: Path) -> None:
    _parquet_dir(tmp_path, [4, 4])
    source = ParquetSource(tmp_path)
    (split,) = source.discover(CTX)
    moved = Split(split_id=split.split_id, info={"files": split.info["files"][::-1]})

    with pytest.raises(SourceError, match="input listing changed"):
        source.open(moved, {"file": 1, "row": 2, "path": split.info["files"][1]}, CTX)


def test_columns_and_batch_rows_shape_the_batches(tmp_path: Path) -> None:
    _parquet_dir(tmp_path, [10])
    source = ParquetSource(tmp_path, columns=["id"], batch_rows=4)
    (split,) = source.discover(CTX)

    batches, _, _ = _drain(source, split, None, max_rows=100)

    assert [b.num_rows for b in batches] == [4, 4, 2]
    assert batches[0].column_names == ["id"]


def test_jsonl_reads_gzip_and_an_explicit_schema(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"id": i, "x": None if i < 3 else "s"}) + "\n" for i in range(6))
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    schema = pa.schema([("id", pa.int32()), ("x", pa.string())])
    source = JSONLSource(tmp_path, schema=schema)
    (split,) = source.discover(CTX)

    batches, _, _ = _drain(source, split, None, max_rows=100)

    assert pa.concat_tables(batches).schema == schema
    assert _concat(batches)[3] == {"id": 3, "x": "s"}


# -- bad input ------------------------------------------------------------------------------


def test_unreadable_parquet_file_raises_source_error_naming_it(tmp_path: Path) -> None:
    _parquet_dir(tmp_path, [3])
    (tmp_path / "part-001.parquet").write_bytes(b"this is not parquet")
    source = ParquetSource(tmp_path)
    (split,) = source.discover(CTX)
    reader = source.open(split, None, CTX)

    assert reader.read(3) is not None  # the good first file
    with pytest.raises(SourceError) as info:
        reader.read(3)
    assert "part-001.parquet" in str(info.value)
    assert "expected a Parquet file" in str(info.value)


def test_bad_json_line_raises_source_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{"id": 2, oops\n')
    source = JSONLSource(tmp_path)
    (split,) = source.discover(CTX)

    with pytest.raises(SourceError, match=r"bad\.jsonl: expected JSON lines"):
        _drain(source, split, None, max_rows=10)


def test_jsonl_type_change_suggests_a_schema(tmp_path: Path) -> None:
    lines = [json.dumps({"x": None})] * 100 + [json.dumps({"x": "late text"})]
    (tmp_path / "drift.jsonl").write_text("\n".join(lines) + "\n")
    source = JSONLSource(tmp_path, block_size=1024)
    (split,) = source.discover(CTX)

    with pytest.raises(SourceError, match=r"schema="):
        _drain(source, split, None, max_rows=1000)


# -- sinks ----------------------------------------------------------------------------------


def _stage(sink: StagedFileSink, epoch: int, tables_by_writer: list[list[pa.Table]]):
    """Write each writer's tables into ``epoch`` and return the pre-commit states."""
    states = []
    for index, tables in enumerate(tables_by_writer):
        writer = sink.writer(CTX, index)
        for table in tables:
            writer.write(epoch, table)
        states.append(writer.precommit(epoch))
        writer.close()
    return states


def _visible(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def test_sink_publishes_only_on_commit_with_deterministic_names(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    states = _stage(sink, 3, [[_rows(0, 2)], [_rows(2, 2), _rows(4, 1)]])

    assert ParquetSource(tmp_path).discover(CTX) == []  # staged files are invisible
    assert states[1] == {"files": ["_staging/job/epoch-000003-r001-w001-00000.parquet"]}

    sink.commit(CTX, 3, states)

    assert _visible(tmp_path) == [
        "job-e000003-w000-00000.parquet",
        "job-e000003-w001-00000.parquet",
    ]
    (split,) = ParquetSource(tmp_path).discover(CTX)
    assert _concat(_drain(ParquetSource(tmp_path), split, None, 100)[0]) == _rows(0, 5).to_pylist()


def test_empty_epoch_stages_no_file(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    states = _stage(sink, 1, [[pa.table({"id": pa.array([], pa.int64())})], []])

    sink.commit(CTX, 1, states)

    assert states == [{"files": []}, {"files": []}]
    assert _visible(tmp_path) == []


def test_writer_rolls_files_by_rows(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, rows_per_file=4)
    (state,) = _stage(sink, 1, [[_rows(0, 3), _rows(3, 3), _rows(6, 3)]])

    assert [f.rsplit("-", 1)[1] for f in state["files"]] == [
        "00000.parquet",  # 3 + 3 rows: rolls once 4 are reached
        "00001.parquet",  # 3 rows
    ]


def test_a_sink_of_many_schemas_rolls_files_on_schema_change(tmp_path: Path) -> None:
    sink = CollectingSink(tmp_path, rows_per_file=4)  # no one schema: a file per schema
    other = pa.table({"name": ["a"]})
    (state,) = _stage(sink, 1, [[_rows(0, 3), other]])

    assert [f.rsplit("-", 1)[1] for f in state["files"]] == ["00000.arrow", "00001.arrow"]


def test_commit_twice_is_idempotent(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    states = _stage(sink, 1, [[_rows(0, 3)]])
    sink.commit(CTX, 1, states)
    before = {p: (tmp_path / p).read_bytes() for p in _visible(tmp_path)}

    sink.commit(CTX, 1, states)

    assert {p: (tmp_path / p).read_bytes() for p in _visible(tmp_path)} == before


def test_commit_finishes_a_move_that_crashed_between_copy_and_delete(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    (state,) = _stage(sink, 1, [[_rows(0, 3)]])
    staged = tmp_path / state["files"][0]
    final = tmp_path / "job-e000001-w000-00000.parquet"
    final.write_bytes(staged.read_bytes())  # the copy happened, the delete did not

    sink.commit(CTX, 1, [state])

    assert not staged.exists()
    assert pq.read_table(final).to_pylist() == _rows(0, 3).to_pylist()


def test_commit_refuses_to_replace_a_different_final_file(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    sink.commit(CTX, 1, _stage(sink, 1, [[_rows(0, 3)]]))
    again = _stage(sink, 1, [[_rows(0, 300)]])  # the same job id, run over from scratch

    with pytest.raises(SinkError, match="job id reused without its checkpoints"):
        sink.commit(CTX, 1, again)
    assert pq.read_table(tmp_path / "job-e000001-w000-00000.parquet").num_rows == 3


def test_commit_of_a_lost_staged_file_raises(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    (state,) = _stage(sink, 1, [[_rows(0, 3)]])
    (tmp_path / state["files"][0]).unlink()

    with pytest.raises(SinkError, match="is gone and was never published"):
        sink.commit(CTX, 1, [state])


def test_abort_deletes_only_that_epochs_staged_files(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    aborted = _stage(sink, 1, [[_rows(0, 1)]])
    kept = _stage(sink, 2, [[_rows(1, 1)]])

    sink.abort(CTX, 1, aborted)

    assert _visible(tmp_path) == kept[0]["files"]


def test_recover_deletes_staged_files_after_the_restored_epoch(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    committed = _stage(sink, 1, [[_rows(0, 1)]])
    sink.commit(CTX, 1, committed)
    pending = _stage(sink, 2, [[_rows(1, 1)]])  # pre-committed in checkpoint 2
    _stage(sink, 3, [[_rows(2, 1)]])  # its checkpoint never completed

    sink.recover(CTX, 2)

    assert _visible(tmp_path) == sorted(["job-e000001-w000-00000.parquet", *pending[0]["files"]])


def test_recover_from_nothing_deletes_all_staged_files_of_the_job(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    _stage(sink, 1, [[_rows(0, 1)]])
    other = JobContext(job_id="other")
    writer = sink.writer(other, 0)
    writer.write(1, _rows(0, 1))
    (state,) = [writer.precommit(1)]

    sink.recover(CTX, None)

    assert _visible(tmp_path) == state["files"]


def test_job_id_that_would_hide_the_output_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="job_id '_x'"):
        ParquetSink(tmp_path).writer(JobContext(job_id="_x"), 0)


def test_jsonl_sink_output_reads_back_with_jsonl_source(tmp_path: Path) -> None:
    sink = JSONLSink(tmp_path)
    table = pa.table({"id": [1, 2], "blob": [b"\x00\x01", b"hi"], "note": ["é", None]})
    sink.commit(CTX, 7, _stage(sink, 7, [[table]]))

    source = JSONLSource(tmp_path)
    (split,) = source.discover(CTX)
    rows = _concat(_drain(source, split, None, 10)[0])

    assert rows == [{"id": 1, "blob": "AAE=", "note": "é"}, {"id": 2, "blob": "aGk=", "note": None}]


# -- S3 and credentials ---------------------------------------------------------------------


def test_parquet_round_trip_on_s3_with_resume_and_crashed_move(s3_server, s3_bucket) -> None:
    fs = s3_server.filesystem()
    whole = _rows(0, 30)
    for i in range(3):
        pq.write_table(
            whole.slice(10 * i, 10), f"{s3_bucket}/in/p{i}.parquet", filesystem=fs, row_group_size=4
        )
    source = ParquetSource(s3_server.uri(s3_bucket, "in"), files_per_group=2)
    sink = ParquetSink(s3_server.uri(s3_bucket, "out"))

    epoch_rows = []
    for epoch, split in enumerate(source.discover(CTX), start=1):
        first, state, _ = _drain(source, split, None, max_rows=3, limit=2)
        rest, _, _ = _drain(source, split, state, max_rows=3)
        epoch_rows.append(pa.concat_tables(first + rest))
        (precommit,) = _stage(sink, epoch, [[epoch_rows[-1]]])
        if epoch == 1:  # crash between the copy and the delete of an S3 "move"
            staged = f"{s3_bucket}/out/{precommit['files'][0]}"
            fs.copy_file(staged, f"{s3_bucket}/out/job-e000001-w000-00000.parquet")
        sink.commit(CTX, epoch, [precommit])
        sink.commit(CTX, epoch, [precommit])

    out = ParquetSource(s3_server.uri(s3_bucket, "out"))
    (split,) = out.discover(CTX)
    assert _concat(_drain(out, split, None, 100)[0]) == whole.to_pylist()
    staged = fs.get_file_info(pafs.FileSelector(f"{s3_bucket}/out/_staging", recursive=True))
    assert [i.path for i in staged if i.type == pafs.FileType.File] == []


def test_credentials_never_appear_in_repr_errors_or_logs(s3_server, s3_bucket) -> None:
    secrets = (s3_server.access_key, s3_server.secret_key)
    s3_server.filesystem().open_output_stream(f"{s3_bucket}/in/bad.parquet").close()
    source = ParquetSource(s3_server.uri(s3_bucket, "in"))
    sink = ParquetSink(s3_server.uri(s3_bucket, "out"))
    texts = [repr(source), str(source), repr(sink)]
    with capture_logs() as logs:
        (split,) = source.discover(CTX)
        with pytest.raises(SourceError) as bad_file:
            _drain(source, split, None, 10)
        with pytest.raises(SourceError) as missing:
            ParquetSource(s3_server.uri(s3_bucket, "nothing")).discover(CTX)
        with pytest.raises(ConfigError) as bad_uri:
            ParquetSource(f"s3://{secrets[0]}:{secrets[1]}@b/x?bogus_option=1").discover(CTX)
        sink.commit(CTX, 1, _stage(sink, 1, [[_rows(0, 1)]]))
    errors = (bad_file, missing, bad_uri)
    texts += ["".join(traceback.format_exception(e.value)) for e in errors]  # with causes
    texts += [str(entry) for entry in logs]

    assert f"s3://{s3_bucket}/in/bad.parquet" in str(bad_file.value)
    assert logs  # discovery and commit were logged
    assert not [t for t in texts if any(s in t for s in secrets)]


def test_redact_masks_userinfo_and_secret_parameters() -> None:
    text = redact("s3://AK:SK@bucket/p?endpoint_override=h:1&secret_key=SK&session_token=T")
    assert text == "s3://***@bucket/p?endpoint_override=h:1&secret_key=***&session_token=***"
