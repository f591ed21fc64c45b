"""A Ray cluster of ``ray start`` processes on this machine: a head and worker nodes joined
to it, as on real machines (``ray start --head``, then ``ray start --address=...``).

Every process of it runs under one temp folder of its own, and is stopped by finding the
processes that name that folder (``ray stop`` would stop every Ray on the machine, the test
session's included).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RayStartCluster:
    gcs_address: str
    dashboard_url: str
    temp_dir: str
    env: dict[str, str] = field(default_factory=dict)


def _ray_start(args: list[str], env: Mapping[str, str]) -> None:
    done = subprocess.run(
        [RAY, "start", *args, "--disable-usage-stats"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ray start {args} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")


def _node_ports() -> list[str]:
    """Ports of one node's agents, free now (several nodes share this host)."""
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--min-worker-port=0",
        "--max-worker-port=0",
    ]


@contextlib.contextmanager
def ray_start_cluster(
    workers: list[tuple[int, Mapping[str, float], Mapping[str, str]]], pythonpath: str
) -> Iterator[RayStartCluster]:
    """A head with no CPUs for work (and the dashboard, for ``ray job submit``) and one
    worker node per ``(num_cpus, resources, labels)``."""
    temp_dir = tempfile.mkdtemp(prefix="tfrs-", dir="/tmp")
    env = {
        **os.environ,
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
        "RAY_enable_worker_prestart": "0",
        "PYTHONPATH": pythonpath,
    }
    env.pop("RAY_ADDRESS", None)
    # Ray 2.60 authenticates with a token: one for the whole cluster, given to every node
    # and every driver (on real machines: a secret that each of them mounts).
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    port, dashboard = free_port(), free_port()
    try:
        _ray_start(
            [
                "--head",
                f"--port={port}",
                "--num-cpus=0",
                f"--temp-dir={temp_dir}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard}",
                "--object-store-memory=157286400",
                *_node_ports(),
            ],
            env,
        )
        address = f"127.0.0.1:{port}"
        for num_cpus, resources, labels in workers:
            _ray_start(
                [
                    f"--address={address}",
                    f"--num-cpus={num_cpus}",
                    f"--resources={json.dumps(dict(resources))}",
                    "--labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
                    "--object-store-memory=157286400",
                    *_node_ports(),
                ],
                env,
            )
        yield RayStartCluster(
            gcs_address=address,
            dashboard_url=f"http://127.0.0.1:{dashboard}",
            temp_dir=temp_dir,
            env=env,
        )
    finally:
        _stop(temp_dir)


def _stop(temp_dir: str) -> None:
    """Stop every process whose command line names ``temp_dir`` (TERM, then KILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids_naming(temp_dir)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
            time.sleep(0.1)


def _pids_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found
