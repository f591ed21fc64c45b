"""Actor classes for the scheduler tests; importable by Ray workers (tests dir on PYTHONPATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path


class Worker:
    """A small actor whose methods block, fail, crash or count on request."""

    def __init__(self) -> None:
        self.calls = 0

    def add(self, a: int, fn: int = 0) -> int:
        return a + fn

    def slow(self, x: int, delay_s: float) -> int:
        time.sleep(delay_s)
        return x * 2

    def whoami(self, delay_s: float = 0.0) -> int:
        time.sleep(delay_s)
        return os.getpid()

    def record(self, label: str) -> tuple[str, int]:
        """Return the label and this actor's call number, to see the order calls ran in."""
        self.calls += 1
        return label, self.calls

    def wait_for(self, path: str, timeout_s: float = 60.0) -> str:
        """Block until ``path`` exists (the test's release signal)."""
        deadline = time.monotonic() + timeout_s
        while not Path(path).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear within {timeout_s} s")
            time.sleep(0.01)
        return "released"

    def block_first_time(self, marker: str, x: int) -> int:
        """The first call (anywhere) creates ``marker`` and hangs; later calls return at once."""
        if not Path(marker).exists():
            Path(marker).touch()
            time.sleep(120)
        return x * 2

    def fail(self, message: str) -> None:
        raise KeyError(message)

    def crash(self) -> None:
        os._exit(1)


class BrokenInit:
    """An actor whose constructor always raises."""

    def __init__(self) -> None:
        raise ValueError("weights file missing")

    def run(self) -> None: ...


class Splitter:
    """Returns a large value with small metadata beside it."""

    def split(self, n: int):
        from tideflow.core.scheduler import WithMeta

        return WithMeta(list(range(n)), {"count": n})
