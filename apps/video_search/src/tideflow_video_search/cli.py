"""``video-search``: the app's command line.

    video-search samples DIR                       # the generated corpus (videos + queries)
    video-search ingest SRC --index DIR [--follow] [--fps 1] [--shard-seconds 10]
    video-search query --index DIR [--k 5] [--json] [--source speech] TEXT
    video-search serve --index DIR [--host 127.0.0.1] [--port 8000]
    video-search eval --index DIR --queries FILE [--corpus DIR] [--json]

SRC: a folder of videos (local, ``s3://…``, ``hdfs://…``) or ``kafka://HOST:PORT/TOPIC``.
Exit codes: 0 done, 1 the job failed or indexed nothing because every input went to the dead
letters, 2 bad arguments or input (a bounded SRC with no videos in it included), 130
interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tideflow.core.arguments import (
    integer_in,
    pool_size,
    positive_number,
    priority_rule,
    seconds,
)
from tideflow.core.ray_start import apply_app_ray_settings
from tideflow_video_search._sample_plan import MAX_COUNT, MIN_COUNT

__all__ = ["build_parser", "main"]


def _add_ingest(commands: Any) -> None:
    ingest = commands.add_parser("ingest", help="index videos (a folder, bucket or Kafka topic)")
    ingest.add_argument(
        "source", metavar="SRC", help="folder/bucket of videos or kafka://HOST:PORT/TOPIC"
    )
    ingest.add_argument("--index", required=True, metavar="DIR", help="the index directory")
    ingest.add_argument(
        "--follow", action="store_true", help="keep reading new videos until Ctrl-C"
    )
    ingest.add_argument(
        "--fps", type=positive_number, default=1.0, help="frames sampled per second (1)"
    )
    ingest.add_argument("--keyframes", action="store_true", help="sample keyframes only")
    ingest.add_argument(
        "--shard-seconds", type=positive_number, default=10.0, help="shard length (10)"
    )
    ingest.add_argument(
        "--checkpoint-interval",
        type=positive_number,
        default=3.0,
        metavar="S",
        help="seconds between checkpoints (3)",
    )
    ingest.add_argument(
        "--epoch-shards",
        type=integer_in(1, 100_000),
        default=2,
        help="most shards per checkpoint (2)",
    )
    ingest.add_argument(
        "--embedding", default="e5", help="e5 (multilingual, default), minilm, or a model folder"
    )
    ingest.add_argument(
        "--whisper-model", default="base", help="base (default), tiny.en, or a faster-whisper model"
    )
    ingest.add_argument(
        "--speech-language", default=None, help="language of the speech (default: detected)"
    )
    for channel in ("ocr", "subtitles", "speech", "dedup"):
        ingest.add_argument(f"--no-{channel}", action="store_true", help=f"turn {channel} off")
    ingest.add_argument("--ocr-pool", type=pool_size, default=None, metavar="N|MIN,MAX")
    ingest.add_argument("--speech-pool", type=pool_size, default=None, metavar="N|MIN,MAX")
    ingest.add_argument("--embed-pool", type=pool_size, default=(1, 1), metavar="N|MIN,MAX")
    ingest.add_argument(
        "--priority",
        type=priority_rule,
        action="append",
        default=[],
        metavar="GLOB[=N]",
        help="videos that go first",
    )
    ingest.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: a live table on a terminal; --progress elsewhere: "
        "a plain line every 2 s)",
    )
    ingest.add_argument(
        "--metrics-port",
        type=integer_in(1, 65535),
        default=None,
        help="serve Prometheus metrics here",
    )
    ingest.add_argument(
        "--num-cpus", type=integer_in(1, 1024), default=None, help="CPUs of the local Ray"
    )


def build_parser() -> argparse.ArgumentParser:
    """The `video-search` argument parser: `ingest`, `query`, `serve`, `samples`, `eval`."""
    parser = argparse.ArgumentParser(
        prog="video-search",
        description="Search videos by what is on screen, in their subtitles and in their speech.",
    )
    parser.add_argument("--log-format", choices=("auto", "console", "json"), default="auto")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="warning"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_ingest(commands)

    query = commands.add_parser(
        "query",
        help="search an index",
        description="Search an index: the best moments for TEXT, best first. With --json, "
        "stdout is one JSON list of hits (uri, video_id, start_s, end_s, text, source, "
        "score, ...); messages go to stderr.",
    )
    query.add_argument("text", nargs="+", metavar="TEXT", help="what to look for")
    query.add_argument("--index", required=True, metavar="DIR", help="the index directory")
    query.add_argument("--k", type=integer_in(1, 100), default=5, help="hits (1..100, default 5)")
    query.add_argument("--json", action="store_true", help="print one JSON list of hits")
    query.add_argument("--video-id", default=None, metavar="ID", help="only this video")
    query.add_argument(
        "--source",
        choices=("ocr", "subtitle", "speech"),
        default=None,
        help="only this channel (on-screen text, subtitles or speech)",
    )
    query.add_argument(
        "--language", default=None, metavar="CODE", help="only segments in this language (en)"
    )
    query.add_argument(
        "--start-s",
        type=seconds,
        default=None,
        metavar="S",
        help="only segments that end at or after S seconds",
    )
    query.add_argument(
        "--end-s",
        type=seconds,
        default=None,
        metavar="S",
        help="only segments that start at or before S seconds",
    )
    query.add_argument(
        "--mode",
        choices=("hybrid", "text", "vector"),
        default="hybrid",
        help="hybrid (BM25 + vectors, default), text (BM25 only) or vector",
    )
    query.add_argument("--group", action="store_true", help="one hit per video (its best)")

    serve = commands.add_parser(
        "serve",
        help="the HTTP API and the web page",
        description="Serve the search page at / and the HTTP API (/api/search, "
        "/api/search/frame, /api/thumbnails/ID, /api/videos/ID, /healthz, /metrics).",
    )
    serve.add_argument("--index", required=True, metavar="DIR", help="the index directory")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument(
        "--port", type=integer_in(1, 65535), default=8000, help="port to listen on (8000)"
    )

    samples = commands.add_parser(
        "samples", help="write the generated corpus (videos, truth.json, queries.jsonl)"
    )
    samples.add_argument("folder", metavar="DIR", help="where to write it (created if missing)")
    samples.add_argument(
        "--count",
        type=integer_in(MIN_COUNT, MAX_COUNT),
        default=MAX_COUNT,
        help=f"videos ({MIN_COUNT}..{MAX_COUNT}: one of each kind at least; default {MAX_COUNT})",
    )
    samples.add_argument("--seed", type=int, default=0, help="the corpus to draw (0)")
    samples.add_argument("--bad", action="store_true", help="also write bad inputs under DIR/bad")

    evaluate = commands.add_parser(
        "eval", help="recall@k, MRR, nDCG of a query file; OCR CER, speech WER"
    )
    evaluate.add_argument("--index", required=True, metavar="DIR", help="the index directory")
    evaluate.add_argument(
        "--queries",
        default=None,
        metavar="FILE",
        help="JSON lines (default: queries.jsonl of --corpus, else the frozen set)",
    )
    evaluate.add_argument(
        "--corpus", default=None, metavar="DIR", help="the samples folder (for CER/WER)"
    )
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument(
        "--out", default=None, metavar="FILE", help="also write the JSON report here"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `video-search` command; returns its exit code (2 on bad input, 130 on Ctrl-C)."""
    args = build_parser().parse_args(argv)
    apply_app_ray_settings()  # before anything imports Ray
    from tideflow.core.errors import TideflowError
    from tideflow.core.observability import configure_logging

    configure_logging(format=args.log_format, level=args.log_level, stream=sys.stderr)
    handlers = {
        "ingest": _ingest,
        "query": _query,
        "serve": _serve,
        "samples": _samples,
        "eval": _eval,
    }
    try:
        return int(handlers[args.command](args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except TideflowError as error:
        print(f"video-search {args.command}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file or folder that cannot be read or written
        print(f"video-search {args.command}: {error}", file=sys.stderr)
        return 1


def _ingest(args: argparse.Namespace) -> int:
    from tideflow_video_search.config import IngestConfig
    from tideflow_video_search.ingest import Ingest
    from tideflow_video_search.schema import TABLE_NAME

    config = IngestConfig(
        fps=args.fps,
        keyframes=args.keyframes,
        shard_seconds=args.shard_seconds,
        checkpoint_interval_s=args.checkpoint_interval,
        epoch_shards=args.epoch_shards,
        embedding=args.embedding,
        whisper_model=args.whisper_model,
        speech_language=args.speech_language,
        ocr=not args.no_ocr,
        subtitles=not args.no_subtitles,
        speech=not args.no_speech,
        dedup=not args.no_dedup,
        ocr_pool=args.ocr_pool,
        speech_pool=args.speech_pool,
        embed_pool=args.embed_pool,
        priority=dict(args.priority),
    )
    ingest = Ingest(args.source, args.index, config=config, follow=args.follow)
    from tideflow.core.ray_start import start_ray
    from tideflow_video_search.ingest import local_cpus

    # Ctrl-C while Ray starts leaves no Ray process behind (then exit code 130).
    start_ray(num_cpus=args.num_cpus or local_cpus(), include_dashboard=False, log_to_driver=False)
    print(
        f"ingesting {ingest.source!r} into {ingest.index_dir} (job {ingest.job_id})",
        file=sys.stderr,
    )
    result = ingest.run(progress=args.progress, metrics_port=args.metrics_port)
    job = result.job
    print(
        f"done: {job.rows_in} shards read, {job.rows_out} rows written, "
        f"{job.dead_letters} dead letters ({result.dead_letters}), {job.wall_s:.1f} s",
        file=sys.stderr,
    )
    if job.stopped:
        print(
            "video-search ingest: stopped; what was read is indexed, and the same command "
            "goes on from there",
            file=sys.stderr,
        )
        return 130
    table = ingest.index_dir / TABLE_NAME
    if not args.follow and job.rows_in == 0 and job.dead_letters == 0 and not table.exists():
        from tideflow.core.uri import redact
        from tideflow.media.sources import VIDEO_EXTENSIONS

        print(
            f"video-search ingest: nothing was indexed: no videos found in "
            f"{redact(args.source)!r} "
            f"(expected files ending in {', '.join(VIDEO_EXTENSIONS)}, or video URIs in the topic)",
            file=sys.stderr,
        )
        return 2
    if job.only_dead_letters:
        print(
            f"video-search ingest: nothing was indexed: every input went to the dead letters "
            f"({job.dead_letters}); their errors say why: {result.dead_letters}",
            file=sys.stderr,
        )
        return 1
    return 0


def _query(args: argparse.Namespace) -> int:
    from tideflow_video_search.search import SearchIndex

    index = SearchIndex(args.index)
    hits = index.search(
        " ".join(args.text),
        k=args.k,
        video_id=args.video_id,
        source=args.source,
        language=args.language,
        start_s=args.start_s,
        end_s=args.end_s,
        mode=args.mode,
        group_by_video=args.group,
    )
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return 0
    if not hits:
        print("no results")
    for n, hit in enumerate(hits, start=1):
        span = f"{_clock(hit.start_s)}–{_clock(hit.end_s)}"
        print(f"{n:>2}. {hit.score:.3f}  {hit.video_id}  {span}  [{hit.source}]  {hit.text[:100]}")
    return 0


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def _serve(args: argparse.Namespace) -> int:
    from tideflow_video_search.search import SearchIndex
    from tideflow_video_search.server import check_address, serve

    SearchIndex(args.index)  # a missing index is refused before anything is announced
    check_address(args.host, args.port)
    print(
        f"serving {args.index} on http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr
    )
    serve(args.index, host=args.host, port=args.port)
    return 0


def _samples(args: argparse.Namespace) -> int:
    from tideflow_video_search.samples import make_bad_samples, make_samples

    corpus = make_samples(args.folder, count=args.count, seed=args.seed)
    print(f"wrote {len(corpus.videos)} videos to {args.folder}", file=sys.stderr)
    if args.bad:
        bad = make_bad_samples(args.folder)
        print(f"wrote {len(bad)} bad inputs to {os.path.join(args.folder, 'bad')}", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tideflow.core.errors import ConfigError
    from tideflow_video_search.evaluation import evaluate_index, format_report

    out = Path(args.out).absolute() if args.out else None
    if out is not None:  # refused before the queries run, not after
        existing = next(p for p in out.parents if p.exists())
        if out.is_dir() or not existing.is_dir():
            message = f"--out {args.out!r}: expected a file path ({existing} is not a folder)"
            if out.is_dir():
                message = f"--out {args.out!r}: expected a file path, not a folder"
            raise ConfigError(message)
    report = evaluate_index(args.index, queries=args.queries, corpus=args.corpus)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    print(text if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
