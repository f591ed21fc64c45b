"""The same pipeline on one node and on a multi-node Ray, with nodes lost and drained.

Each case runs ``_cluster_driver.py`` in a process of its own: a ``ray.cluster_utils``
cluster (a head with no CPUs for work, two nodes of an "io" pool, two of a "cpu" pool) is a
Ray of its own, apart from the test session's. The map stage selects nodes labelled
``tideflow.io/pool=cpu``, the keyed stage asks for ``pool_cpu``, the I/O actor for ``pool_io``
(``io_resources``). The output must hold every
record exactly once, per key in order, whatever happened to the nodes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tideflow.core.autoscaler import ScalingConfig
from tideflow.streaming.testing import CollectingSink

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent
N, BATCH = 3000, 40


def _run(
    tmp_path: Path,
    scenario: str,
    checkpoints: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[dict, list[dict]]:
    done = subprocess.run(
        [
            sys.executable,
            str(TESTS / "_cluster_driver.py"),
            str(tmp_path),
            scenario,
            str(N),
            str(BATCH),
            *([checkpoints] if checkpoints else []),
        ],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env=env,
    )
    result = tmp_path / "result.json"
    assert done.returncode == 0 and result.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    out = CollectingSink.read(str(tmp_path / "out")).to_pylist()
    return json.loads(result.read_text()), out


def _assert_exactly_once_in_key_order(out: list[dict]) -> None:
    ids = Counter(r["id"] for r in out)
    assert set(ids) == set(range(N)), f"missing {sorted(set(range(N)) - set(ids))[:10]}"
    assert max(ids.values()) == 1, f"duplicated {[i for i, c in ids.items() if c > 1][:10]}"
    per_key: dict[int, list[int]] = {}
    for r in sorted(out, key=lambda r: r["id"]):
        per_key.setdefault(r["key"], []).append(r["n"])
    for ranks in per_key.values():
        assert ranks == list(range(1, len(ranks) + 1))


# The bound: the stage's pool is back at its minimum within two windows of the
# autoscaler (ScalingConfig's default window, which the map stage keeps).
BACK_AT_MIN_S = 2 * ScalingConfig().window_s


def _back_at_min_after(result: dict, since: float) -> float:
    """Seconds from ``since`` until the map stage had its minimum of ready actors again
    (0 when it never fell below it); fails when the job ended still below it."""
    samples = [(t, n, low) for t, n, low in result["actors"] if t >= since]
    assert samples, "no actor samples after the event"
    below = [t for t, n, low in samples if n < low]
    if not below:
        return 0.0
    later = [t for t, n, low in samples if t > below[-1] and n >= low]
    assert later, f"the pool was still below its minimum when the job ended: {samples[-5:]}"
    return later[0] - since


def _rows(out: list[dict]) -> list[tuple]:
    return sorted((r["id"], r["key"], r["n"]) for r in out)


def test_the_output_on_several_nodes_is_the_output_on_one_and_stages_stay_in_their_pool(
    tmp_path,
):
    _, one_out = _run(tmp_path / "one", "one-node")
    many, many_out = _run(tmp_path / "many", "place")

    _assert_exactly_once_in_key_order(many_out)
    assert _rows(many_out) == _rows(one_out)
    log = (tmp_path / "many" / "batches.log").read_text().splitlines()
    assert {json.loads(line)["node"] for line in log} <= set(many["pools"]["cpu"])
    assert many["restarts"] == 0 and (many["rows_in"], many["rows_out"]) == (N, N)


def test_losing_the_node_of_the_io_actor_loses_and_repeats_no_record(
    tmp_path, s3_server, s3_bucket
):
    # Checkpoints on the S3 protocol (the moto server), reached from every node alike.
    result, out = _run(tmp_path, "remove-io", s3_server.uri(s3_bucket, "ckpt"))

    assert result["event"]["node"] in result["pools"]["io"]
    # One restart, or more: until Ray declares the node dead (health checks), it may still
    # place the new I/O actor there, and that attempt is lost too.
    assert 1 <= result["restarts"] <= 3
    _assert_exactly_once_in_key_order(out)
    assert (result["rows_in"], result["rows_out"]) == (N, N)
    assert _back_at_min_after(result, result["event"]["removed"]) <= BACK_AT_MIN_S


def test_draining_the_node_of_the_io_actor_moves_the_job_before_the_node_goes(tmp_path):
    result, out = _run(tmp_path, "drain-io")

    assert result["event"]["drain_accepted"][0] is True
    # One move, from a checkpoint taken after the notice (and a restart more if the node
    # went before the move was done, on a slow machine).
    assert 1 <= result["restarts"] <= 3
    _assert_exactly_once_in_key_order(out)
    assert _back_at_min_after(result, result["event"]["notice"]) <= BACK_AT_MIN_S


def test_a_draining_node_gets_no_new_batches_and_the_stage_goes_on_elsewhere(tmp_path):
    result, out = _run(tmp_path, "drain-cpu")

    node, notice = result["event"]["node"], result["event"]["notice"]
    batches = [json.loads(line) for line in (tmp_path / "batches.log").read_text().splitlines()]
    late = [b["start"] - notice for b in batches if b["node"] == node and b["start"] > notice]
    # Work sent before the engine saw the notice (it looks every 0.25 s) and the calls
    # already queued at the actor (2 in flight × 0.1 s) may still start; nothing later.
    assert max(late, default=0.0) < 0.8, late
    after = [b for b in batches if b["start"] > notice + 1.0]
    assert after and {b["node"] for b in after} <= set(result["pools"]["cpu"]) - {node}
    _assert_exactly_once_in_key_order(out)
    assert _back_at_min_after(result, notice) <= BACK_AT_MIN_S


def test_on_ray_start_processes_the_pipeline_connects_and_an_app_is_submitted_as_a_job(
    tmp_path,
):
    from _ray_start import RAY, ray_start_cluster

    pool = "tideflow.io/pool"
    workers = [(2, {"pool_io": 4}, {pool: "io"}), (2, {"pool_cpu": 4}, {pool: "cpu"})]
    with ray_start_cluster(workers, pythonpath=str(TESTS)) as cluster:
        # The unchanged pipeline, whose driver only names the cluster (RAY_ADDRESS).
        env = {**cluster.env, "RAY_ADDRESS": cluster.gcs_address}
        result, out = _run(tmp_path / "connect", "connect", env=env)
        _assert_exactly_once_in_key_order(out)
        cpu_nodes = {node for node, labels in result["labels"].items() if labels.get(pool) == "cpu"}
        log = (tmp_path / "connect" / "batches.log").read_text().splitlines()
        assert cpu_nodes and {json.loads(line)["node"] for line in log} == cpu_nodes

        # An app, submitted as a Ray job (the path to a real cluster).
        bin_dir = Path(sys.executable).parent
        videos, dest = tmp_path / "videos", tmp_path / "ocr-out"
        subprocess.run([str(bin_dir / "video-ocr"), "samples", str(videos)], check=True)
        runtime_env = {"env_vars": {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}}
        entry = [str(bin_dir / "video-ocr"), "run", str(videos), "--out", str(dest)]
        entry += ["--state", str(tmp_path / "ocr-state"), "--progress", "off"]
        submitted = subprocess.run(
            [
                RAY,
                "job",
                "submit",
                "--address",
                cluster.dashboard_url,
                "--runtime-env-json",
                json.dumps(runtime_env),
                "--",
                *entry,
            ],
            env={k: v for k, v in cluster.env.items() if k != "RAY_ADDRESS"},
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
        assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
        assert "succeeded" in submitted.stdout
        written = [line for f in dest.rglob("*.jsonl") for line in f.read_text().splitlines()]
        assert written, sorted(p.name for p in dest.rglob("*"))


def test_losing_a_node_of_the_stages_with_its_batches_loses_and_repeats_no_record(tmp_path):
    result, out = _run(tmp_path, "remove-cpu")

    assert result["event"]["node"] in result["pools"]["cpu"]
    _assert_exactly_once_in_key_order(out)
    assert (result["rows_in"], result["rows_out"]) == (N, N)
    assert _back_at_min_after(result, result["event"]["removed"]) <= BACK_AT_MIN_S
