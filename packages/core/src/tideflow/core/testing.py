"""Test helpers that are part of the public API: a fake clock, a shared local Ray, a local
S3-protocol server."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tideflow.core.errors import ConfigError

__all__ = ["CTRL_C_WHILE_RAY_STARTS", "FakeClock", "S3Server", "local_ray", "moto_s3_server"]


class FakeClock:
    """A clock that only moves when told to. Implements :class:`tideflow.core.Clock`.

    >>> clock = FakeClock()
    >>> clock.advance(1.5)
    1.5
    >>> clock.now()
    1.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (≥ 0) and return the new time."""
        if seconds < 0:
            raise ConfigError(f"FakeClock.advance: seconds must be >= 0, got {seconds!r}")
        self._now += seconds
        return self._now

    def set(self, now: float) -> None:
        """Jump to ``now``, which must not be earlier than the current time."""
        if now < self._now:
            raise ConfigError(f"FakeClock.set: time cannot go back from {self._now} to {now}")
        self._now = float(now)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now})"


@contextmanager
def local_ray(
    *,
    num_cpus: int = 8,
    resources: Mapping[str, float] | None = None,
    pythonpath: Sequence[str] = (),
) -> Iterator[bool]:
    """A local Ray for a test session: started here, or reused if one is already running.

    Yields True when this call started Ray (and shuts it down on exit), False when it reuses
    a running session (left running), so several packages' fixtures can share one session.
    ``num_cpus`` is logical: generous values let pools of small actors fit on a 2-core
    machine. ``pythonpath`` entries go on the workers' ``PYTHONPATH`` (for actor classes in
    test helper modules) and on this process's ``sys.path``.
    """
    import logging
    import os
    import sys
    import tempfile

    import ray

    for entry in pythonpath:
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if ray.is_initialized():
        yield False
        return
    env = {"PYTHONPATH": os.pathsep.join(pythonpath)} if pythonpath else {}
    ray.init(
        num_cpus=num_cpus,
        resources=dict(resources or {}),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        _temp_dir=tempfile.mkdtemp(prefix="tf-ray-", dir="/tmp"),
        runtime_env={"env_vars": env} if env else None,
    )
    try:
        yield True
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class S3Server:
    """A local S3-protocol server (moto) on 127.0.0.1 and how to reach it from pyarrow.

    The default keys are distinctive strings, so tests can assert they never leak into text.
    """

    host: str
    port: int
    access_key: str = "AKIAQUIETKEY7"
    secret_key: str = "s3cr3t-Sw0rdfish"
    region: str = "us-east-1"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def filesystem(self) -> Any:  # pyarrow.fs.S3FileSystem
        from pyarrow import fs

        return fs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            allow_bucket_creation=True,
            allow_bucket_deletion=True,
        )

    def uri(self, bucket: str, path: str = "") -> str:
        """An ``s3://`` URI with keys and endpoint inline, as ``FileSystem.from_uri`` wants."""
        tail = f"/{path.strip('/')}" if path else ""
        return (
            f"s3://{self.access_key}:{self.secret_key}@{bucket}{tail}"
            f"?endpoint_override={self.endpoint}&scheme=http&region={self.region}"
        )

    def new_bucket(self, hint: str = "bucket") -> str:
        """Create a fresh, empty bucket named after ``hint`` (e.g. a test's name)."""
        name = re.sub(r"[^a-z0-9-]", "-", hint.lower())[:40].strip("-") or "bucket"
        name = f"tf-{name}-{_free_port()}"
        self.filesystem().create_dir(name)
        return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    """A real S3-protocol server (moto in server mode, a test dependency) on a free port."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(host="127.0.0.1", port=port)
    finally:
        server.stop()


# For tests of CLIs, prepended to a CLI call in a child process: a real SIGINT arrives while
# `ray.init` starts the local cluster (its GCS server and raylet run already); `finish(code)`
# then prints what still runs below the child (JSON) and exits with ``code``.
CTRL_C_WHILE_RAY_STARTS = """
import json, os, signal, sys, time
import psutil
import ray._private.node

start_raylet = ray._private.node.Node.start_raylet

def interrupted(self, *args, **kwargs):
    start_raylet(self, *args, **kwargs)
    print("raylet started", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)  # the KeyboardInterrupt is raised here

ray._private.node.Node.start_raylet = interrupted

def finish(code):
    left = psutil.Process().children(recursive=True)
    print(json.dumps([p.name() for p in left if p.status() != psutil.STATUS_ZOMBIE]))
    sys.exit(code)
"""
"""Python source, for tests of CLIs: prepended to a CLI call in a child process, it sends a
real SIGINT while ``ray.init`` starts the local cluster; ``finish(code)`` then prints what
still runs below the child (JSON) and exits with ``code``."""
