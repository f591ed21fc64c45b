"""The terminal side of the live demo: start Ray, show progress, print the summary."""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tideflow_tools.live_demo import LiveConfig, LiveResult, Snapshot, run_live

__all__ = ["local_ray", "run_live_part"]


def _status(s: Snapshot) -> str:
    return (
        f"pool {s.ready}/{s.pool_size} ready · util {s.utilization:.2f} · queued {s.queued:>3}"
        f" · committable offset {s.committable} · checkpoints {s.checkpoints}"
    )


@contextmanager
def local_ray(console: Console) -> Iterator[None]:
    """A local Ray for the demo: started here (and stopped after) unless one is running."""
    import ray

    started = not ray.is_initialized()
    if started:
        console.print("starting a local Ray …")
        ray.init(
            logging_level=logging.WARNING,
            num_cpus=max(2, os.cpu_count() or 2),
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=tempfile.mkdtemp(prefix="tf-demo-ray-", dir="/tmp"),
        )
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def run_live_part(
    console: Console, *, seconds: float, seed: int, checkpoint_dir: str | None
) -> bool:
    """Run the live job on local Ray (started here unless running); True if output was exact."""

    console.rule("6/6 live on local Ray: elastic pool, checkpoints, an actor killed")
    cfg = LiveConfig(
        duration_s=seconds,
        bursts=((seconds / 6, seconds / 2), (seconds * 2 / 3, seconds * 5 / 6)),
        kill_at_s=seconds * 0.4,
        seed=seed,
    )
    with local_ray(console):
        result = _with_progress(console, cfg, checkpoint_dir)
    console.print(_summary(result))
    exact = result.row_sum == result.expected_row_sum and result.committed_rows == result.rows
    console.print(
        "output exact: every row processed once and committed once"
        if exact
        else "[red]output NOT exact: rows were lost or duplicated[/red]"
    )
    return exact


def _with_progress(console: Console, cfg: LiveConfig, checkpoint_dir: str | None) -> LiveResult:
    if not console.is_terminal:
        last = [-1]

        def lines(s: Snapshot) -> None:
            if int(s.elapsed_s) // 3 != last[0]:
                last[0] = int(s.elapsed_s) // 3
                print(f"{s.elapsed_s:5.1f} s  {s.done}/{s.total} batches  {_status(s)}", flush=True)

        return run_live(cfg, checkpoint_dir=checkpoint_dir, on_tick=lines)
    with Progress(
        TextColumn("batches"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    ) as bar:
        task = bar.add_task("live", total=None, status="starting the first actor …")

        def update(s: Snapshot) -> None:
            bar.update(task, total=s.total, completed=s.done, status=_status(s))

        tick: Callable[[Snapshot], None] = update
        return run_live(cfg, checkpoint_dir=checkpoint_dir, on_tick=tick)


def _summary(r: LiveResult) -> Table:
    table = Table(title="live job")
    table.add_column("what")
    table.add_column("value", justify="right")
    rate = r.rows / r.wall_s if r.wall_s else 0.0
    table.add_row("batches / rows", f"{r.batches} / {r.rows}")
    table.add_row("wall time, rows/s", f"{r.wall_s:.1f} s, {rate:,.0f}")
    table.add_row("rows committed by the sink", str(r.committed_rows))
    table.add_row("peak pool size", str(r.peak_size))
    for e in r.scale_events:
        took = f", ready after {e.duration_s:.1f} s" if e.duration_s is not None else ""
        table.add_row(f"scale {e.direction}", f"{e.from_size} → {e.to_size}{took}")
    table.add_row("actor deaths / retries", f"{r.actor_deaths} / {r.retries}")
    if r.checkpoint_times_s:
        p50 = statistics.median(r.checkpoint_times_s) * 1000
        worst = max(r.checkpoint_times_s) * 1000
        table.add_row("checkpoints completed", f"{len(r.checkpoints)}")
        table.add_row("checkpoint save p50 / max", f"{p50:.1f} / {worst:.1f} ms")
    table.add_row("checkpoints kept in", r.checkpoint_dir)
    return table
