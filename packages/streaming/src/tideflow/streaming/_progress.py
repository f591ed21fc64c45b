"""The progress display for a person at a terminal: rows, rate, stages, back-pressure."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from tideflow.streaming._metrics import JobResult

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """A live table on a terminal; nothing at all when the stream is not a terminal."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        out = stream if stream is not None else sys.stderr
        self._console = Console(file=out)
        self.enabled = self._console.is_terminal
        self._live: Live | None = None
        self._started = time.monotonic()

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self._live = Live(console=self._console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, result: JobResult) -> None:
        if self._live is not None:
            self._live.update(self.render(result))

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
