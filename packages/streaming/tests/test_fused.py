"""Fused stages (``fused=True``): a light stateless stage runs in the job's I/O actor, next
to the reader (right after the source) or the writer (right before the sink), instead of
in a pool of its own — with the same rules for bad rows, the same metrics, exactly once
across a restart, and a clear error where fusion cannot apply."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from _udfs import LogPid, NamesBadRows, Slow, add_one, keep_even, rows

from tideflow.core.errors import ConfigError
from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming._acks import check_ack_mode
from tideflow.streaming._plan import StageSpec, split_fused
from tideflow.streaming._worker import FusedChain
from tideflow.streaming.testing import CollectingSink, TestSource

N = 600
BATCH = 40


def _source(**options) -> TestSource:
    return TestSource([rows(BATCH, start) for start in range(0, N, BATCH)], **options)


def _identity(table: pa.Table) -> pa.Table:
    return table


def _plan(*fused: bool, writers: int = 1):
    pipe = Pipeline.read(_source())
    for index, flag in enumerate(fused):
        pipe = pipe.map_batches(_identity, name=f"s{index}", fused=flag)
    return pipe.write(CollectingSink("/tmp/unused"), writers=writers)._plan


# -- without Ray ---------------------------------------------------------------------------


def test_fused_stages_at_the_two_ends_run_in_the_io_actor_and_the_rest_in_pools():
    split = split_fused(_plan(True, True, False, False, True))
    assert [s.name for s in split.read] == ["s0", "s1"]
    assert [s.name for s in split.pooled] == ["s2", "s3"]
    assert [s.name for s in split.write] == ["s4"]

    everything = split_fused(_plan(True, True))  # no pool at all: all on the read side
    assert [s.name for s in everything.read] == ["s0", "s1"]
    assert everything.pooled == everything.write == ()


def test_a_fused_stage_between_pooled_stages_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"\['s1'\] are fused but sit between"):
        split_fused(_plan(False, True, False))


def test_fused_stages_before_the_sink_need_the_one_writer_of_the_io_actor():
    with pytest.raises(ConfigError, match="writers=2"):
        split_fused(_plan(False, True, writers=2))
    assert split_fused(_plan(True, False, writers=2)).read  # read side: any writers


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"concurrency": (1, 2)}, "concurrency"),
        ({"batch_size": 10}, "batch_size"),
        ({"num_gpus": 1}, "num_gpus"),
        ({"resources": {"accel": 1}}, "resources"),
    ],
)
def test_what_a_fused_stage_cannot_take_is_named(options, named):
    with pytest.raises(ConfigError, match=f"fused stage.*{named}"):
        Pipeline.read(_source()).map_batches(_identity, fused=True, **options)


def test_the_fused_option_is_a_bool_and_keyed_stages_have_none():
    with pytest.raises(ConfigError, match="fused must be True or False"):
        Pipeline.read(_source()).map_batches(_identity, fused="yes")
    with pytest.raises(ConfigError, match=r"unknown options.*fused"):
        Pipeline.read(_source()).stateful_map("key", lambda s, r: (s, r), fused=True)


def test_ack_mode_refuses_fused_stages():
    plan = (
        Pipeline.read(_source(offsets=True))
        .map_batches(_identity, name="light", fused=True)
        .write(CollectingSink("/tmp/unused"))
        ._plan
    )
    with pytest.raises(ConfigError, match=r"cannot run fused stages \(\['light'\]\)"):
        check_ack_mode(plan)


def test_a_fused_chain_runs_its_stages_in_order_with_their_dead_letters(tmp_path):
    calls = tmp_path / "calls"
    chain = FusedChain(
        [
            StageSpec(name="named", udf=NamesBadRows, constructor_args=(str(calls),)),
            StageSpec(name="plus", udf=add_one),
            StageSpec(name="even", udf=keep_even, kind="filter"),
        ]
    )
    out, metas, dead = chain.run(pa.Table.from_pylist(rows(20)))

    assert out.column("id").to_pylist() == [2, 4, 6, 8, 12, 14, 16, 18]
    assert out.column("x").to_pylist() == [3, 5, 7, 9, 13, 15, 17, 19]
    assert [(m["stage"], m["rows_in"], m["rows_out"], m["dead"]) for m in metas] == [
        ("named", 20, 16, 4),
        ("plus", 16, 16, 0),
        ("even", 16, 8, 0),
    ]
    assert dead is not None and dead.column("stage").to_pylist() == ["named"] * 4
    assert "multiple of 5" in dead.column("error")[0].as_py()


def test_a_fused_chain_stops_at_a_stage_that_kept_no_rows():
    chain = FusedChain(
        [StageSpec(name="even", udf=keep_even, kind="filter"), StageSpec(name="plus", udf=add_one)]
    )
    out, metas, dead = chain.run(pa.Table.from_pylist([{"id": 1, "key": 1}]))
    assert out.num_rows == 0 and [m["stage"] for m in metas] == ["even"] and dead is None


# -- on a local Ray ------------------------------------------------------------------------


def _ids(out_dir: Path) -> Counter[int]:
    return Counter(r["id"] for r in CollectingSink.read(str(out_dir)).to_pylist())


@pytest.mark.ray
def test_fused_stages_run_in_the_io_process_with_bad_rows_dead_lettered(ray_session, tmp_path):
    out, fused_pids, pooled_pids = tmp_path / "out", tmp_path / "fused", tmp_path / "pooled"
    result = (
        Pipeline.read(_source(), batch_size=BATCH)
        .map_batches(NamesBadRows, fused=True, fn_constructor_args=(str(tmp_path / "calls"),))
        .map_batches(LogPid, name="read_pid", fused=True, fn_constructor_args=(str(fused_pids),))
        .map_batches(LogPid, name="pooled", num_cpus=0.25, fn_constructor_args=(str(pooled_pids),))
        .map_batches(LogPid, name="write_pid", fused=True, fn_constructor_args=(str(fused_pids),))
        .filter(keep_even, fused=True)
        .write(CollectingSink(str(out)))
        .run(
            job_id="fused",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.3),
            dead_letter=CollectingSink(str(tmp_path / "dead")),
        )
    )

    expected = {i for i in range(N) if i % 5 != 0 and i % 2 == 0}
    ids = _ids(out)
    assert set(ids) == expected and max(ids.values()) == 1
    assert (result.rows_in, result.rows_out, result.dead_letters) == (N, len(expected), N // 5)
    # Both ends ran in one process (the I/O actor's), not the pooled stage's.
    fused = set(fused_pids.read_text().split())
    assert len(fused) == 1 and fused.isdisjoint(pooled_pids.read_text().split())
    stages = result.stages
    assert list(stages) == ["NamesBadRows", "read_pid", "pooled", "write_pid", "keep_even"]
    assert (stages["NamesBadRows"].rows_in, stages["NamesBadRows"].dead_letters) == (N, N // 5)
    assert stages["keep_even"].rows_out == len(expected)
    assert stages["read_pid"].batches == N // BATCH and stages["read_pid"].busy_s > 0
    dead = CollectingSink.read(str(tmp_path / "dead")).to_pylist()
    assert sorted(r["stage"] for r in dead) == ["NamesBadRows"] * (N // 5)


@pytest.mark.ray
def test_a_lost_io_actor_with_fused_stages_restarts_exactly_once(ray_session, tmp_path):
    import threading
    import time

    import ray

    out = tmp_path / "out"
    job = (
        Pipeline.read(_source(), batch_size=BATCH)
        .map_batches(add_one, fused=True)
        .map_batches(Slow, num_cpus=0.25, fn_constructor_args=(0.02,))
        .filter(keep_even, fused=True)
        .write(CollectingSink(str(out)))
        .start(
            job_id="fused-lost-io",
            checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=0.3, retain=50),
        )
    )

    def kill() -> None:
        deadline = time.monotonic() + 60
        while job.progress.rows_out < N // 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        ray.kill(ray.get_actor("tideflow-io:fused-lost-io:1.0"))

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    result = job.wait(timeout=240)
    killer.join(5)

    assert result.restarts == 1
    ids = _ids(out)
    assert set(ids) == set(range(0, N, 2)) and max(ids.values()) == 1
    assert (result.rows_in, result.rows_out) == (N, N // 2)  # replayed rows count once


@pytest.mark.ray
def test_a_pipeline_of_fused_stages_only_starts_no_pool(ray_session, tmp_path):
    out = tmp_path / "out"
    result = (
        Pipeline.read(_source(), batch_size=BATCH)
        .map_batches(add_one, fused=True)
        .filter(keep_even, fused=True)
        .write(CollectingSink(str(out)))
        .run(job_id="all-fused", checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt")))
    )
    ids = _ids(out)
    assert set(ids) == set(range(0, N, 2)) and max(ids.values()) == 1  # each stage ran once
    assert result.stages["add_one"].rows_in == N and result.stages["keep_even"].rows_out == N // 2
