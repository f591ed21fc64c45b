"""The OCR app's part of ``make demo``: generated videos → the app → a per-video summary.

:func:`run_demo` writes the generated corpus (English, Chinese when its font is installed,
one corrupt file, one truncated file), runs the app into an Iceberg table (SQLite catalog)
and JSON lines, prints one row per video (status, segments, character error rate against
the known text, whether every segment's start and end are within one sampling interval of
the truth) and raises :class:`DemoCheckError` when a result is wrong.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tideflow.core.ray_start import start_ray
from tideflow_ocr.app import OcrApp, read_results
from tideflow_ocr.config import OcrConfig
from tideflow_ocr.errors import OcrError
from tideflow_ocr.sinks import VideoFailure
from tideflow_ocr.testdata import VideoSpec, character_error_rate, default_specs, make_corpus

__all__ = ["DemoCheckError", "DemoResult", "run_demo"]

_FPS = 1.0


class DemoCheckError(OcrError):
    """The demo's output was wrong; the message lists every problem."""


@dataclass
class DemoResult:
    """What the demo saw, per video."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    """One summary row per generated video."""
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def _times_ok(spec: VideoSpec, segments: list[dict[str, Any]]) -> bool:
    for text, start, end in spec.truth():
        match = [s for s in segments if character_error_rate(text, s["text"]) <= 0.1]
        if len(match) != 1:
            return False
        if abs(match[0]["start_s"] - start) > 1 / _FPS or abs(match[0]["end_s"] - end) > 1 / _FPS:
            return False
    return len(segments) == len(spec.truth())


def _check(
    spec: VideoSpec,
    row: dict[str, Any] | None,
    failure: VideoFailure | None,
    problems: list[str],
) -> dict[str, Any]:
    """One video's summary row; what is wrong about it goes to ``problems``."""
    broken = spec.corrupt or spec.truncate is not None
    if row is None:
        stage = failure.stage if failure else "missing"
        if not broken:
            problems.append(f"{spec.name}: no result ({stage})")
        elif failure is None:
            problems.append(f"{spec.name}: failed but no failure callback")
        return {
            "video": spec.name,
            "status": f"failed ({stage})",
            "segments": 0,
            "cer": None,
            "times_ok": None,
            "text": failure.reason if failure else "",
        }
    cer = character_error_rate(spec.expected_text(), row["text"])
    timing = _times_ok(spec, row["segments"])
    if broken:
        problems.append(f"{spec.name}: a broken video has a result")
    if cer > 0.02:
        problems.append(f"{spec.name}: CER {cer:.3f} > 0.02 ({row['text']!r})")
    if not timing:
        problems.append(f"{spec.name}: segment times off: {row['segments']}")
    return {
        "video": spec.name,
        "status": "ok",
        "segments": len(row["segments"]),
        "cer": round(cer, 4),
        "times_ok": timing,
        "text": row["text"].replace("\n", " | "),
    }


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_demo(
    workdir: str | Path | None = None,
    *,
    console: Any = None,
    ocr_actors: tuple[int, int] | None = None,
    check: bool = True,
) -> DemoResult:
    """Run the app on generated videos and print a per-video summary on ``console`` (a
    ``rich.console.Console``; default: stdout). Raises :class:`DemoCheckError` when a
    video's text, timing or failure is not what its generator says (with ``check``)."""
    from rich.console import Console
    from rich.table import Table

    out = console if console is not None else Console(highlight=False)
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="tideflow-ocr-"))
    root.mkdir(parents=True, exist_ok=True)
    for name in ("videos", "warehouse", "jsonl", "state"):  # a fresh run in a reused workdir
        shutil.rmtree(root / name, ignore_errors=True)
    (root / "catalog.db").unlink(missing_ok=True)
    specs = make_corpus(root / "videos", default_specs())
    catalog = {"uri": f"sqlite:///{root}/catalog.db", "warehouse": f"{root}/warehouse"}
    app = OcrApp(
        str(root / "videos"),
        ["iceberg://ocr_demo.results", str(root / "jsonl")],
        config=OcrConfig(shard_seconds=2.0, fps=_FPS, ocr_concurrency=ocr_actors),
        catalog=catalog,
        state_uri=str(root / "state"),
        job_id="ocr-demo",
    )
    out.print(
        f"OCR app: {len(specs)} generated videos in {root / 'videos'} → "
        f"Iceberg ocr_demo.results + JSON lines (shards of 2 s, 1 frame/s)"
    )
    failures: list[VideoFailure] = []
    started = time.monotonic()

    def completed(batch: list[Any]) -> None:
        for video in batch:
            out.print(f"  done    {video.video_id}: {video.segments} segments", markup=False)

    def failed(batch: list[VideoFailure]) -> None:
        failures.extend(batch)
        for failure in batch:
            out.print(f"  failed  {failure.video_id}: [{failure.stage}]", markup=False)

    # Unless Ray runs already; a Ctrl-C while it starts leaves none of its processes running.
    start_ray(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    run = app.run(on_complete=completed, on_failure=failed, progress=out.is_terminal)
    result = DemoResult(wall_s=time.monotonic() - started)
    rows = {r["video_id"]: r for r in read_results("iceberg://ocr_demo.results", catalog=catalog)}
    table = Table(title=f"video OCR: {len(specs)} videos in {result.wall_s:.1f} s")
    table.add_column("video", no_wrap=True, min_width=16)
    table.add_column("status", no_wrap=True, min_width=15)
    table.add_column("segs", justify="right", no_wrap=True, min_width=4)
    table.add_column("CER", justify="right", no_wrap=True, min_width=5)
    table.add_column("±1 s", justify="right", no_wrap=True, min_width=4)
    table.add_column("text", no_wrap=True)
    for spec in specs:
        failure = next((f for f in failures if f.video_id == spec.name), None)
        summary = _check(spec, rows.get(spec.name), failure, result.problems)
        result.rows.append(summary)
        table.add_row(
            summary["video"],
            summary["status"],
            str(summary["segments"]),
            "-" if summary["cer"] is None else f"{100 * summary['cer']:.1f} %",
            {True: "yes", False: "NO", None: "-"}[summary["times_ok"]],
            _short(str(summary["text"]), 18),
        )
    out.print(table)
    ocr = run.job.stages["ocr"]
    out.print(
        f"shards OCR'd: {ocr.rows_in}, checkpoints: {len(run.job.checkpoints)}, dead letters: "
        f"{app.dead_letters}",
        markup=False,
    )
    if check and result.problems:
        raise DemoCheckError("; ".join(result.problems))
    return result
