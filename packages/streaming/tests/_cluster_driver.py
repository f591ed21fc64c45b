"""Runs one pipeline on a multi-node Ray (``ray.cluster_utils.Cluster``) in its own process.

Nodes on this one machine stand for pools: a head with no CPUs for work, two "io" nodes
(custom resource ``pool_io``, label ``tideflow.io/pool=io``) and two "cpu" nodes
(``pool_cpu``, ``tideflow.io/pool=cpu``). The map stage (placed by label) logs the node
that ran each batch, counts per key in a keyed stage, and writes to a
collecting sink; the I/O actor is pinned to the io pool. Scenarios:

- ``place``: run it; every row's map node must be a cpu node.
- ``one-node``: the same pipeline on a plain one-node Ray that has both pools' resources.
- ``connect``: start no Ray: ``RAY_ADDRESS`` names a running cluster (``ray start``
  processes, or a ``ray job submit`` driver's), and ``Pipeline.run`` connects to it.
- ``remove-io``: remove the node that holds the I/O actor (not gracefully) mid-run.
- ``drain-io``: drain the I/O actor's node for preemption (GCS, reason PREEMPTION), then
  remove it.
- ``drain-cpu``: drain the node of one map actor, then remove it; the map stage logs which
  node ran each batch and when, to check that no batch started there after the notice.
- ``remove-cpu``: remove the node of one map actor (not gracefully): its actors, a keyed
  partition maybe, and the batches in its object store go with it.

Arguments: tmp folder, scenario, rows, batch size, and the checkpoint URI (default a folder
of tmp; an ``s3://`` URI of the tests' S3 server works from every node alike). Writes
``<tmp>/result.json``: the job's figures, the nodes by pool, the drain/removal time.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

import ray
from _udfs import TagNode, count_per_key, rows
from ray.cluster_utils import Cluster

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.testing import CollectingSink, TestSource

# Ray's own tests shorten the health checks so that a removed node is declared dead fast.
POOL_LABEL = "tideflow.io/pool"  # the node label tideflow-cluster renders for each pool
FAST_HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
}


def _start_cluster(tmp: str) -> tuple[Cluster | None, dict[str, list]]:
    here = os.path.dirname(os.path.abspath(__file__))
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "_system_config": FAST_HEALTH,
            "include_dashboard": False,
            "object_store_memory": 150 * 1024**2,
        },
    )
    pools: dict[str, list] = {"io": [], "cpu": []}
    for pool in ("io", "io", "cpu", "cpu"):
        node = cluster.add_node(
            num_cpus=2,
            resources={f"pool_{pool}": 4},
            labels={POOL_LABEL: pool},
            object_store_memory=150 * 1024**2,
        )
        pools[pool].append(node)
    cluster.wait_for_nodes()
    ray.init(
        address=cluster.address,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": here}},
    )
    return cluster, pools


def _node_of_actor(name: str) -> str:
    actor = ray.get_actor(name)
    return ray.get(actor.__ray_call__.remote(lambda _self: ray.get_runtime_context().get_node_id()))


def _start_one_node() -> tuple[None, dict[str, list]]:
    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(
        num_cpus=4,
        resources={"pool_io": 4, "pool_cpu": 8},
        labels={POOL_LABEL: "cpu"},
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": here}},
    )
    return None, {}


def main(tmp: str, scenario: str, n: int, batch: int, checkpoints: str) -> None:
    if scenario == "connect":  # RAY_ADDRESS names a running cluster: run() connects to it
        cluster, pools = None, {}
    elif scenario == "one-node":
        cluster, pools = _start_one_node()
    else:
        cluster, pools = _start_cluster(tmp)
    source = TestSource([rows(batch, start) for start in range(0, n, batch)])
    job = (
        Pipeline.read(source, batch_size=batch)
        .map_batches(
            TagNode,
            num_cpus=0.5,
            concurrency=2,
            label_selector={POOL_LABEL: "cpu"},  # by node label; the keyed stage by resource
            fn_constructor_args=(0.1, f"{tmp}/batches.log"),
        )
        .stateful_map(
            "key", count_per_key, partitions=2, num_cpus=0.25, resources={"pool_cpu": 0.5}
        )
        .write(CollectingSink(f"{tmp}/out"))
        .start(
            job_id="cluster",
            checkpoint=CheckpointConfig(uri=checkpoints, interval_s=0.3, retain=50),
            io_resources={"pool_io": 1},
            # By node label too, where the nodes have the pools' labels (one node cannot).
            io_label_selector=None if scenario == "one-node" else {POOL_LABEL: "io"},
        )
    )
    event: dict[str, object] = {}
    # (time, ready map actors, the stage's minimum) every 0.05 s while rows are still to
    # come (at the end the pool is shut down): is the pool back at its minimum soon after
    # the node went (or was drained)?
    actors: list[tuple[float, int, int]] = []

    def sample() -> None:
        while not job.done():
            stage = job.progress.stages.get("TagNode")
            if stage is not None:
                seen = (time.time(), stage.actors, stage.actors_min)
                if job.progress.rows_out >= n:  # read after the last write: the end
                    break
                actors.append(seen)
            time.sleep(0.05)

    def disturb() -> None:
        while job.progress.rows_out < n // 4 and not job.done():
            time.sleep(0.02)
        if scenario in ("remove-io", "drain-io"):
            victim_id = _node_of_actor("tideflow-io:cluster:1.0")
        else:  # drain-cpu, remove-cpu: the node of a map actor (it ran the latest batch)
            with open(f"{tmp}/batches.log") as log:
                victim_id = json.loads(log.read().splitlines()[-1])["node"]
        victim = next(
            node for nodes in pools.values() for node in nodes if node.node_id == victim_id
        )
        event["node"] = victim_id
        if scenario.startswith("drain"):
            from ray.core.generated import autoscaler_pb2

            gcs = ray._raylet.GcsClient(address=cluster.address)
            deadline_ms = int(time.time() * 1000) + 4000
            event["notice"] = time.time()
            accepted, why = gcs.drain_node(
                victim_id,
                autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
                "preempted (test)",
                deadline_ms,
            )
            event["drain_accepted"] = [bool(accepted), str(why)]
            time.sleep(3.0)  # the preemption comes at the deadline
        event["removed"] = time.time()
        cluster.remove_node(victim, allow_graceful=False)

    if scenario not in ("place", "one-node", "connect"):
        threading.Thread(target=disturb, daemon=True).start()
        threading.Thread(target=sample, daemon=True).start()
    result = job.wait(timeout=300)
    summary = {
        "restarts": result.restarts,
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "dead_letters": result.dead_letters,
        "pools": {pool: [node.node_id for node in nodes] for pool, nodes in pools.items()},
        "labels": {n["NodeID"]: dict(n.get("Labels") or {}) for n in ray.nodes() if n["Alive"]},
        "event": event,
        "actors": actors,
    }
    with open(f"{tmp}/result.json", "w") as out:
        json.dump(summary, out)
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()


if __name__ == "__main__":
    tmp, scenario, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    main(tmp, scenario, n, batch, sys.argv[5] if len(sys.argv) > 5 else f"{tmp}/ckpt")
