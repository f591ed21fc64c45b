"""Starting Ray from an application so that Ctrl-C during the start leaves nothing behind.

``ray.init`` starting a local cluster spawns processes (the GCS server, the raylet, the
dashboard, the log monitor …) before Ray knows them well enough for ``ray.shutdown()`` to
stop them: a Ctrl-C or an error in between leaves them running, orphaned.
:func:`start_ray` cleans up after such a start and raises again.

>>> from tideflow.core.ray_start import start_ray
>>> start_ray(num_cpus=4, include_dashboard=False)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from tideflow.core.errors import ConfigError
from tideflow.core.observability import get_logger

__all__ = ["APP_RAY_SETTINGS", "apply_app_ray_settings", "start_ray"]

APP_RAY_SETTINGS = {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "RAY_enable_worker_prestart": "0"}
"""What the apps' command lines set for Ray (a value already in the environment is kept):
under `uv run`, Ray 2.60 would start every worker through `uv run` (~2 s per actor; the
workers share this venv), and prestarted idle workers cost memory for nothing on a small box."""


def apply_app_ray_settings() -> None:
    """Set :data:`APP_RAY_SETTINGS` where unset. Call it in a CLI's ``main`` before anything
    imports Ray (Ray reads the first when it is imported); importing a module sets nothing."""
    for name, value in APP_RAY_SETTINGS.items():
        os.environ.setdefault(name, value)


_ROUNDS = 8
"""At most this many rounds of finding and stopping the processes a failed start left."""

_QUIET_S = 0.5
"""A look that finds nothing new is repeated once after this long: a process being spawned
(Ray's agents, started by the raylet or by a thread of this process) shows up only then
(seen twice in CI as two python processes left after one empty look)."""

_GRACE_S = 5.0
"""How long started processes get to exit after SIGTERM before they are killed."""

_Process = tuple[int, str]
"""A process of this host: its id and its start time (so that a reused id is not it)."""


def start_ray(**options: Any) -> bool:
    """``ray.init(**options)`` unless Ray is initialized already; True if this call started it.

    If the start is interrupted (KeyboardInterrupt) or fails, Ray is shut down, every
    process that appeared under this one during the start is terminated (and killed if it
    is still there after a few seconds), and the exception is raised again: a CLI maps the
    KeyboardInterrupt to exit code 130 with nothing left running. A second Ctrl-C during
    that clean-up is ignored. Processes are found through ``/proc``; where there is none,
    only ``ray.shutdown()`` runs. A cluster ``address`` (or ``RAY_ADDRESS``) that nothing
    listens on is a :class:`~tideflow.core.errors.ConfigError` naming it, within seconds.
    """
    import ray

    if ray.is_initialized():
        return False
    _check_reachable(options.get("address") or os.environ.get("RAY_ADDRESS"))
    before = _descendants(os.getpid())
    try:
        ray.init(**options)
    except BaseException as error:
        with _sigint_ignored():
            with contextlib.suppress(Exception):
                ray.shutdown()
            # Again until none is left: a process may still be spawning others (Ray's
            # agents) while the first ones are stopped.
            started: set[_Process] = set()
            quiet = 0  # looks in a row that found nothing new
            for _ in range(_ROUNDS):
                found = _descendants(os.getpid()) - before - started
                if not found:
                    quiet += 1
                    if quiet == 2:  # nothing new twice, _QUIET_S apart: nothing is starting
                        break
                    time.sleep(_QUIET_S)
                    continue
                quiet = 0
                _terminate(found)
                started |= found
        get_logger("tideflow.ray").warning(
            "ray.start_failed", error=type(error).__name__, processes_stopped=len(started)
        )
        raise
    return True


_CONNECT_TIMEOUT_S = 5.0
"""How long :func:`start_ray` tries to open a TCP connection to a given cluster address."""


def _check_reachable(address: str | None) -> None:
    """A cluster address (``host:port``, ``ray://host:port``) that nothing listens on is a
    :class:`~tideflow.core.errors.ConfigError` naming it: ``ray.init`` would retry its GCS
    connection for minutes. ``auto``, ``local`` and no address start or find Ray as usual."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port; ray.init says what it expects
    try:
        with socket.create_connection((host.strip("[]"), int(port)), _CONNECT_TIMEOUT_S):
            return
    except OSError as error:
        reason = error.strerror or type(error).__name__
    message = (
        f"cannot reach the Ray cluster at {address!r}: {reason}; expected the address of a "
        "running Ray head (its GCS, host:6379 by default, or ray://host:10001), or no "
        "address to start a local Ray"
    )
    raise ConfigError(message)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT meanwhile (only the main thread can set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stat(pid: int) -> tuple[int, str, str] | None:
    """``(parent id, state, start time)`` of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state, ppid, …; the start time is field 22 of the whole line.
    return int(fields[1]), fields[0].decode(), fields[19].decode()


def _descendants(root: int) -> set[_Process]:
    """Every live process below ``root`` (children, their children …)."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return set()
    children: dict[int, list[tuple[int, str]]] = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None and stat[1] != "Z":
            children.setdefault(stat[0], []).append((pid, stat[2]))
    found: set[_Process] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child[0])
    return found


def _alive(process: _Process) -> bool:
    pid, started = process
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child and has exited
    stat = _stat(pid)
    return stat is not None and stat[2] == started and stat[1] != "Z"


def _signal(processes: set[_Process], signum: int) -> None:
    for process in processes:
        if _alive(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process[0], signum)


def _terminate(processes: set[_Process]) -> None:
    """SIGTERM, then SIGKILL what is still there after :data:`_GRACE_S`; wait until gone."""
    _signal(processes, signal.SIGTERM)
    for signum in (signal.SIGKILL, None):
        deadline = time.monotonic() + _GRACE_S
        while any(_alive(p) for p in processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        if signum is not None:
            _signal(processes, signum)
