"""``video-ocr``: the app's command line.

    video-ocr run SRC --out DEST [--out DEST ...] [--lang en,ch] [--shard-seconds 10] [--fps 1]
    video-ocr samples DIR        # write the generated test videos (to try the app)

SRC: a folder of videos (local, ``s3://…``, ``hdfs://…``) or ``kafka://HOST:PORT/TOPIC``.
DEST: ``iceberg://NAMESPACE.TABLE`` (catalog: ``--catalog KEY=VALUE``, default embedded),
``jsonl://DIR``, ``parquet://DIR`` or a directory (JSON lines).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

from tideflow.core.arguments import key_value, pool_size, positive_number, priority_rule
from tideflow.core.ray_start import apply_app_ray_settings

__all__ = ["build_parser", "main"]


def _region(text: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1 (fractions); got {text!r}")
    return parts[0], parts[1], parts[2], parts[3]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="video-ocr",
        description=(
            "Video OCR at scale on Tideflow: shards OCR'd in parallel with retry, gathered "
            "per video, filtered into timed text segments; results to Iceberg and/or JSON "
            "lines, failures to a dead-letter output. Checkpointed: run the same command "
            "again to resume."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="OCR the videos of SRC into DEST",
        description="OCR every video of SRC; write one result row per video to each --out.",
    )
    run.add_argument(
        "src",
        metavar="SRC",
        help="a folder or video file (local path, file://, s3://KEY:SECRET@bucket/dir?"
        "endpoint_override=…, hdfs://) or kafka://HOST:PORT/TOPIC (messages: a video URI, or "
        'JSON {"uri", "video_id", "priority"})',
    )
    run.add_argument(
        "--out",
        "-o",
        dest="outputs",
        metavar="DEST",
        action="append",
        required=True,
        help="iceberg://NAMESPACE.TABLE, jsonl://DIR, parquet://DIR or a directory (JSON "
        "lines); repeat for several outputs",
    )
    run.add_argument(
        "--lang",
        default="en,ch",
        help="languages on screen, comma-separated (default en,ch; the bundled PP-OCRv6 "
        "model reads en, ch, chinese_cht, japan, de, fr, es, it, pt, nl)",
    )
    run.add_argument(
        "--shard-seconds",
        type=positive_number,
        default=10.0,
        help="seconds of video per shard (default 10)",
    )
    run.add_argument(
        "--fps", type=positive_number, default=1.0, help="frames sampled per second (default 1)"
    )
    run.add_argument(
        "--keyframes",
        action="store_true",
        help="OCR the keyframes instead of sampling --fps (cheaper; coarser times)",
    )
    run.add_argument(
        "--min-score", type=float, default=0.6, help="layer 1: minimum recognizer score (0.6)"
    )
    run.add_argument(
        "--min-box-height",
        type=float,
        default=0.03,
        help="layer 1: minimum text box height, fraction of the frame height (0.03)",
    )
    run.add_argument(
        "--region",
        type=_region,
        default=(0.0, 0.0, 1.0, 1.0),
        metavar="X0,Y0,X1,Y1",
        help="layer 1: keep text whose box centre is in this part of the frame (fractions)",
    )
    run.add_argument(
        "--priority",
        type=priority_rule,
        action="append",
        default=[],
        metavar="GLOB[=N]",
        help="folder sources: videos whose relative path matches GLOB get priority N "
        "(default 1) and overtake queued ones; repeatable",
    )
    run.add_argument(
        "--catalog",
        type=key_value("--catalog"),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Iceberg catalog property, e.g. uri=sqlite:////data/catalog.db "
        "warehouse=/data/warehouse (default: the embedded catalog under ~/.tideflow)",
    )
    run.add_argument(
        "--state",
        default=".tideflow/ocr",
        help="where checkpoints live (local path or s3://…; default .tideflow/ocr)",
    )
    run.add_argument(
        "--job-id",
        default=None,
        help="the job's id (default: derived from SRC and DEST, so a rerun resumes)",
    )
    run.add_argument(
        "--dead-letters",
        default=None,
        metavar="DIR",
        help="where failed videos go, as JSON lines (default <state>/<job-id>/dead_letters)",
    )
    run.add_argument(
        "--ocr-actors",
        type=pool_size,
        default=None,
        metavar="N|MIN,MAX",
        help="OCR actors; MIN,MAX autoscales (default 1,<CPUs>)",
    )
    run.add_argument(
        "--retries",
        type=int,
        default=2,
        help="retries of a failing shard before its video fails (default 2)",
    )
    run.add_argument(
        "--checkpoint-interval",
        type=positive_number,
        default=1.0,
        metavar="SECONDS",
        help="seconds between checkpoints (default 1)",
    )
    run.add_argument(
        "--follow",
        action="store_true",
        help="keep reading new Kafka messages, or new videos of a folder, until Ctrl-C "
        "(default: what is there now)",
    )
    run.add_argument(
        "--ray-address", default=None, help="join this Ray cluster (default: a local Ray)"
    )
    run.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress on stderr: a live table on a terminal (auto, the default), also a "
        "plain line every 2 s elsewhere (on), or none (off)",
    )
    run.add_argument("--log-format", choices=("auto", "console", "json"), default="auto")
    run.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="warning"
    )
    samples = commands.add_parser(
        "samples",
        help="write the generated test videos (known text; one corrupt file) to DIR",
    )
    samples.add_argument("directory", metavar="DIR")
    return parser


def _run(args: argparse.Namespace, out: Any) -> int:
    apply_app_ray_settings()  # before the imports below import Ray

    from rich.console import Console
    from rich.table import Table

    from tideflow.core.observability import configure_logging
    from tideflow.core.uri import redact
    from tideflow_ocr.app import OcrApp, VideoResult
    from tideflow_ocr.config import OcrConfig
    from tideflow_ocr.sinks import VideoFailure

    configure_logging(format=args.log_format, level=args.log_level)
    config = OcrConfig(
        langs=tuple(x.strip() for x in args.lang.split(",") if x.strip()),
        shard_seconds=args.shard_seconds,
        fps=args.fps,
        keyframes=args.keyframes,
        min_score=args.min_score,
        min_box_height=args.min_box_height,
        region=args.region,
        retries=args.retries,
        ocr_concurrency=args.ocr_actors,
        priority=dict(args.priority),
    )
    app = OcrApp(
        args.src,
        args.outputs,
        config=config,
        catalog=dict(args.catalog),
        state_uri=args.state,
        job_id=args.job_id,
        dead_letters=args.dead_letters,
        checkpoint_interval_s=args.checkpoint_interval,
        follow=args.follow,
    )
    console = Console(file=out, highlight=False, soft_wrap=True, markup=False)
    lock = threading.Lock()

    def completed(batch: list[VideoResult]) -> None:
        with lock:
            for video in batch:
                console.print(f"done    {video.video_id}  {video.segments} segments")

    def failed(batch: list[VideoFailure]) -> None:
        with lock:
            for failure in batch:
                console.print(
                    f"FAILED  {failure.video_id or '-'}  [{failure.stage}] {failure.reason}"
                )

    import logging

    from tideflow.core.ray_start import start_ray

    # Ctrl-C while Ray starts leaves no Ray process behind (then exit code 130).
    start_ray(
        address=args.ray_address,
        include_dashboard=False,
        log_to_driver=args.log_level == "debug",
        logging_level=logging.WARNING,
    )
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    # "on" where stderr is not a terminal (a log, CI): the engine prints plain lines
    result = app.run(on_complete=completed, on_failure=failed, progress=progress)
    table = Table(title=f"video-ocr job {app.job_id} (run {result.job.run})")
    for column in ("videos done", "failed", "shards OCR'd", "shards/s", "wall s", "resumed"):
        table.add_column(column, justify="right")
    ocr = result.job.stages.get("ocr")
    span = (
        (ocr.last_end - ocr.first_start)
        if ocr is not None and ocr.first_start is not None and ocr.last_end is not None
        else 0.0
    )
    table.add_row(
        str(len({v.video_id for v in result.completed})),
        str(len(result.failed)),
        str(ocr.rows_in if ocr else 0),
        f"{(ocr.rows_in if ocr else 0) / span:.1f}" if span else "-",
        f"{result.job.wall_s:.1f}",
        "yes" if result.job.restored_from is not None else "no",
    )
    console.print(table)
    resumed = "no" if result.job.restored_from is None else "yes"
    console.print(
        f"summary: videos_done={len({v.video_id for v in result.completed})} "
        f"failed={len(result.failed)} shards_ocr={ocr.rows_in if ocr else 0} "
        f"wall_s={result.job.wall_s:.1f} resumed={resumed}"
    )
    restored = result.job.restored_from
    if restored is not None:
        console.print(f"resumed from checkpoint {restored} of job {app.job_id}")
    console.print(f"outputs: {', '.join(str(o) for o in app.outputs)}")
    console.print(f"dead letters: {app.dead_letters}")
    if result.job.stopped:
        sys.stderr.write(
            "video-ocr: stopped; what was read is committed, and the same command goes on "
            "from there\n"
        )
        return 130
    if restored is not None and result.job.rows_in == 0 and not result.job.stopped:
        sys.stderr.write(
            f"video-ocr: nothing new was read from {redact(args.src)!r}: job {app.job_id} had "
            "finished at its last checkpoint (a folder is listed once per job; to OCR videos "
            "added since, give a new --job-id)\n"
        )
    if result.job.only_dead_letters:
        sys.stderr.write(
            f"video-ocr: nothing was written: every video went to the dead letters "
            f"({result.job.dead_letters}); their errors say why: {app.dead_letters}\n"
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from tideflow.core.errors import TideflowError

    try:
        if args.command == "samples":
            from tideflow_ocr.testdata import make_corpus

            try:
                specs = make_corpus(args.directory)
            except OSError as error:  # a file in the way, no permission, a missing font
                expected = ""
                if isinstance(error, FileExistsError | NotADirectoryError):
                    expected = "; expected a directory (created when missing)"
                sys.stderr.write(
                    f"video-ocr: error: cannot write the sample videos to {args.directory!r}: "
                    f"{error}{expected}\n"
                )
                return 2
            for spec in specs:
                kind = "corrupt" if spec.corrupt else f"{len(spec.truth())} lines"
                sys.stdout.write(f"{os.path.join(args.directory, spec.name)}  ({kind})\n")
            return 0
        return _run(args, sys.stdout)
    except TideflowError as error:
        sys.stderr.write(f"video-ocr: error: {error}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("video-ocr: interrupted; run the same command again to resume\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
