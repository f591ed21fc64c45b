"""Worker-side logic without Ray: dead-lettering by bisection, key routing, plan checks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tideflow.streaming import CheckpointConfig, Pipeline, PipelineError
from tideflow.streaming._jobdir import join_uri
from tideflow.streaming._keyed import KeyedWorker, partition_by_key
from tideflow.streaming._plan import StageSpec
from tideflow.streaming._worker import StageWorker
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.testing import CollectingSink, TestSource


def _boom_on_7(table: pa.Table) -> pa.Table:
    if 7 in table.column("id").to_pylist():
        raise ValueError("seven")
    return table


def test_a_failing_batch_is_bisected_down_to_its_bad_records():
    worker = StageWorker(StageSpec(name="s", udf=_boom_on_7))
    result = worker.process(pa.table({"id": list(range(20))}))
    out, dead = result.value
    assert out.column("id").to_pylist() == [i for i in range(20) if i != 7]
    assert dead.column("record").to_pylist() == ['{"id": 7}']
    assert dead.column("error").to_pylist() == ["ValueError: seven"]
    assert result.meta["dead"] == 1
    assert result.meta["rows_out"] == 19


def test_a_worker_names_its_stage_in_ray_logs_and_state():
    # Ray prefixes an actor's log lines with its repr and lists it as ``repr_name``.
    assert repr(StageWorker(StageSpec(name="speech", udf=_boom_on_7))) == "StageWorker(speech)"


def test_a_function_failing_on_every_row_dead_letters_all_of_them():
    def fail(table: pa.Table) -> pa.Table:
        raise RuntimeError("no")

    out, dead = (
        StageWorker(StageSpec(name="s", udf=fail)).process(pa.table({"id": list(range(64))})).value
    )
    assert out.num_rows == 0
    assert dead.num_rows == 64


def test_row_stages_map_flat_map_filter():
    table = pa.table({"id": [1, 2, 3]})
    mapped = StageWorker(StageSpec(name="m", udf=lambda r: {"y": r["id"] * 10}, kind="map"))
    assert mapped.process(table).value[0].column("y").to_pylist() == [10, 20, 30]
    flat = StageWorker(StageSpec(name="f", udf=lambda r: [r] * r["id"], kind="flat_map"))
    assert flat.process(table).value[0].num_rows == 6
    kept = StageWorker(StageSpec(name="k", udf=lambda r: r["id"] != 2, kind="filter"))
    assert kept.process(table).value[0].column("id").to_pylist() == [1, 3]


def test_a_stage_returning_the_wrong_type_is_a_dead_letter_naming_the_stage():
    worker = StageWorker(StageSpec(name="bad_type", udf=lambda t: 42))
    _, dead = worker.process(pa.table({"id": [1]})).value
    assert "bad_type" in dead.column("error")[0].as_py()


def test_partition_by_key_is_stable_and_keeps_order():
    table = pa.table({"k": [i % 5 for i in range(100)], "i": list(range(100))})
    parts = partition_by_key(table, "k", 3)
    assert sum(p.num_rows for p in parts) == 100
    for part in parts:
        assert part.column("i").to_pylist() == sorted(part.column("i").to_pylist())
        keys = set(part.column("k").to_pylist())
        assert all(
            k not in set(other.column("k").to_pylist())
            for other in parts
            if other is not part
            for k in keys
        )
    assert [p.num_rows for p in partition_by_key(table, "k", 3)] == [p.num_rows for p in parts]


def test_keyed_worker_keeps_state_per_key_and_snapshots_it():
    def total(state, row):
        s = (state or 0) + row["v"]
        return s, {"k": row["k"], "total": s}

    spec = StageSpec(name="sum", udf=total, kind="keyed", key="k")
    worker = KeyedWorker(spec, "k", None)
    meta, (out, dead) = worker.process(pa.table({"k": ["a", "b", "a"], "v": [1, 2, 3]}))
    assert out.column("total").to_pylist() == [1, 2, 4]
    assert dead is None and meta["rows_out"] == 3
    restored = KeyedWorker(spec, "k", worker.snapshot())
    _, (out, _) = restored.process(pa.table({"k": ["a"], "v": [10]}))
    assert out.column("total").to_pylist() == [14]


def test_join_uri_keeps_the_query_string_last():
    uri = "s3://k:s@bucket/base?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join_uri(uri, "job", "checkpoints") == (
        "s3://k:s@bucket/base/job/checkpoints?endpoint_override=127.0.0.1:9000&scheme=http"
    )
    assert join_uri("/tmp/x/", "job") == "/tmp/x/job"


def test_pipeline_rejects_bad_building_blocks(tmp_path):
    source = TestSource([[{"id": 1}]])
    with pytest.raises(ConfigError, match="Source"):
        Pipeline.read("not a source")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="concurrency"):
        Pipeline.read(source).map_batches(lambda t: t, concurrency=(3, 1))
    with pytest.raises(ConfigError, match="unknown options"):
        Pipeline.read(source).map_batches(lambda t: t, num_gpu=1)
    done = Pipeline.read(source).write(CollectingSink(str(tmp_path)))
    with pytest.raises(PipelineError, match="after write"):
        done.map_batches(lambda t: t)
    with pytest.raises(ConfigError, match="interval_s"):
        CheckpointConfig(uri=str(tmp_path), interval_s=0)


def test_stage_names_are_made_unique():
    source = TestSource([[{"id": 1}]])
    pipe = Pipeline.read(source).map_batches(_boom_on_7).map_batches(_boom_on_7)
    assert [s.name for s in pipe.plan.stages] == ["_boom_on_7", "_boom_on_7_2"]
