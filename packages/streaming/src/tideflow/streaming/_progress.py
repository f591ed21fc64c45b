"""The progress display: a live table of rows, rate, stages and back-pressure for a person at
a terminal; plain lines where progress was asked for and stderr is not a terminal (a log
file, CI, a program reading it)."""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from tideflow.streaming._metrics import JobResult

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """A live table on a terminal; by default nothing when the stream is not a terminal, and
    one plain line every ``line_interval_s`` there after :meth:`force`."""

    def __init__(self, stream: IO[str] | None = None, *, line_interval_s: float = 2.0) -> None:
        self._out = stream if stream is not None else sys.stderr
        self._console = Console(file=self._out)
        self.enabled = self._console.is_terminal
        self.plain = False
        """Plain lines instead of the live table (progress forced off a terminal)."""
        self._line_interval_s = line_interval_s
        self._last_line = -math.inf
        self._live: Live | None = None
        self._started = time.monotonic()

    def force(self) -> None:
        """Show progress even where the stream is not a terminal: as plain lines there."""
        if not self.enabled:
            self.enabled = self.plain = True

    def __enter__(self) -> ProgressDisplay:
        if self.enabled and not self.plain:
            self._live = Live(console=self._console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, result: JobResult, *, final: bool = False) -> None:
        """Show ``result``; a plain line only once ``line_interval_s`` has passed since the
        last one, or when ``final``."""
        if self._live is not None:
            self._live.update(self.render(result))
        elif self.enabled and self.plain:
            now = time.monotonic()
            if final or now - self._last_line >= self._line_interval_s:
                self._last_line = now
                self._out.write(self.line(result) + "\n")
                self._out.flush()

    def line(self, r: JobResult) -> str:
        """One line of what :meth:`render` shows: the job, rows out, rate, checkpoints,
        dead letters, and each stage's rows in → out."""
        elapsed = max(1e-9, time.monotonic() - self._started)
        stages = ", ".join(f"{name} {m.rows_in:,}→{m.rows_out:,}" for name, m in r.stages.items())
        return (
            f"progress: job {r.job_id} run {r.run} · {r.rows_out:,} rows out · "
            f"{r.rows_out / elapsed:,.0f} rows/s · {len(r.checkpoints)} checkpoints · "
            f"{r.dead_letters:,} dead letters · {elapsed:.0f} s · stages: {stages or 'none'}"
        )

    def render(self, r: JobResult) -> Table:
        elapsed = max(1e-9, time.monotonic() - self._started)
        eta = ""
        if r.splits_total and r.splits_finished < r.splits_total and r.splits_finished:
            eta = f" · ETA {elapsed * (r.splits_total / r.splits_finished - 1):.0f} s"
        table = Table(
            title=f"job {r.job_id} (run {r.run}) · {r.rows_out:,} rows out · "
            f"{r.rows_out / elapsed:,.0f} rows/s · {len(r.checkpoints)} checkpoints{eta}"
        )
        for column in ("stage", "rows in", "rows out", "queue", "busy", "back-pressured by"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for name, m in r.stages.items():
            reason = m.backpressure_reason or ""
            table.add_row(
                name,
                f"{m.rows_in:,}",
                f"{m.rows_out:,}",
                str(m.queue_depth),
                f"{m.busy_fraction:.2f}",
                f"{reason} ({m.backpressure_s:.1f} s)" if reason else "",
            )
        return table
