"""``start_ray``: a Ctrl-C (or an error) while ``ray.init`` starts the local cluster leaves no
Ray process behind, and the interruption reaches the caller."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

# Runs in a child process: the GCS server and the raylet have just started when a real
# SIGINT arrives (or the start fails); then it lists what still runs below it.
_DRIVER = """
import json, os, signal, sys, time
import psutil
import ray._private.node
from tideflow.core.ray_start import start_ray

how, temp_dir = sys.argv[1:]
start_raylet = ray._private.node.Node.start_raylet

def interrupted(self, *args, **kwargs):
    start_raylet(self, *args, **kwargs)
    print("raylet started", file=sys.stderr, flush=True)
    if how == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)  # the KeyboardInterrupt is raised here
    raise RuntimeError("the start failed")

ray._private.node.Node.start_raylet = interrupted
try:
    start_ray(num_cpus=1, include_dashboard=False, _temp_dir=temp_dir)
    code = 0
except KeyboardInterrupt:
    code = 130
except RuntimeError:
    code = 1
left = psutil.Process().children(recursive=True)
print(json.dumps([p.name() for p in left if p.status() != psutil.STATUS_ZOMBIE]))
sys.exit(code)
"""


@pytest.fixture
def ray_temp_dir() -> Iterator[str]:
    """A short folder for Ray's files (its socket paths must stay under 108 characters)."""
    path = tempfile.mkdtemp(prefix="tf-ray-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(("how", "code"), [("sigint", 130), ("error", 1)])
def test_an_interrupted_ray_start_leaves_no_process_behind(
    how: str, code: int, ray_temp_dir: str
) -> None:
    env = {**os.environ, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, how, ray_temp_dir],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )

    assert "raylet started" in done.stderr, done.stderr[-3000:]
    assert done.returncode == code, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []  # no gcs_server, raylet, …


_UNREACHABLE = """
import sys, time
import ray
from tideflow.core.errors import ConfigError
from tideflow.core.ray_start import start_ray

started = time.monotonic()
try:
    start_ray(address=sys.argv[1])
except ConfigError as error:
    print(f"{time.monotonic() - started:.1f} {ray.is_initialized()} {error}")
"""


@pytest.mark.parametrize("form", ["{host}:{port}", "ray://{host}:{port}"])
def test_a_cluster_address_nothing_listens_on_is_refused_naming_it(form: str) -> None:
    import socket

    with socket.socket() as probe:  # a port that was just free: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = form.format(host="127.0.0.1", port=port)

    # Its own process: Ray may be initialized in this one; Ray alone retried for minutes.
    done = subprocess.run(
        [sys.executable, "-c", _UNREACHABLE, address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    seconds, initialized, message = done.stdout.strip().split(" ", 2)
    assert message.startswith(f"cannot reach the Ray cluster at {address!r}: "), done.stderr
    assert float(seconds) < 10 and initialized == "False"
