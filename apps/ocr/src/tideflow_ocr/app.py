"""The app: sources and outputs from text, the pipeline, callbacks, a run.

>>> from tideflow_ocr import OcrApp, OcrConfig
>>> app = OcrApp("videos/", ["iceberg://ocr.results", "out/"], config=OcrConfig(fps=1))
>>> result = app.run(on_complete=print, on_failure=print)       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tideflow.core.uri import redact
from tideflow.media.frames import DecodeFrames
from tideflow.media.sources import VideoFolderSource, video_source
from tideflow.streaming import CheckpointConfig, Job, JobResult, Pipeline
from tideflow.streaming.connectors import JSONLSink, ParquetSink, Sink, Source
from tideflow_ocr.config import OcrConfig
from tideflow_ocr.errors import ConfigError
from tideflow_ocr.sinks import DeadLetters, JSONLFileSink, ResultSink, VideoFailure
from tideflow_ocr.stages import RESULT_SCHEMA, FilterVideos, OcrShards, gather_shards

__all__ = [
    "OUTPUT_SCHEMA",
    "OcrApp",
    "OcrRunResult",
    "VideoResult",
    "build_pipeline",
    "parse_output",
    "parse_source",
    "read_dead_letters",
    "read_results",
]

OUTPUT_SCHEMA = RESULT_SCHEMA.remove(RESULT_SCHEMA.get_field_index("outcome"))
"""The columns of a result row in the outputs (one row per video read)."""

_OUTPUT_HELP = (
    "expected iceberg://NAMESPACE.TABLE[?catalog properties], jsonl://DIR, parquet://DIR, "
    "a FILE.jsonl, or a directory (local path or s3://…) for JSON lines"
)


@dataclass(frozen=True)
class VideoResult:
    """A video whose result was committed to the outputs, as given to ``on_complete``."""

    video_id: str
    uri: str
    segments: int
    """Timed text segments found."""


def _cluster_cpus() -> int:
    import ray

    if ray.is_initialized():
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, os.cpu_count() or 1)


def build_pipeline(config: OcrConfig, source: Source) -> Pipeline:
    """The OCR pipeline without its sink: read shards (probe and shard in the source) →
    decode → OCR (elastic pool) → gather per video (keyed, checkpointed) → layer 1 and 2
    filters. Rows out: :data:`~tideflow_ocr.stages.RESULT_SCHEMA`, one per video."""
    ocr_pool = config.ocr_concurrency or (1, _cluster_cpus())
    return (
        Pipeline.read(source, batch_size=1, priority_column="priority")
        .map_batches(
            DecodeFrames,
            name="decode",
            num_cpus=0,
            concurrency=config.decode_concurrency,
            fn_constructor_kwargs={
                "fps": config.fps,
                "keyframes": config.keyframes,
                "max_side": config.max_side,
                "retries": config.retries,
            },
        )
        .map_batches(
            OcrShards,
            name="ocr",
            num_cpus=1,
            concurrency=ocr_pool,
            fn_constructor_args=(config,),
        )
        .stateful_map("video_id", gather_shards, name="gather", num_cpus=0)
        .map_batches(FilterVideos, name="filter", num_cpus=0, fn_constructor_args=(config,))
    )


def parse_source(
    text: str | Source,
    *,
    shard_seconds: float = 10.0,
    priority: Mapping[str, int] | None = None,
    follow: bool = False,
) -> Source:
    """A source from its text: a folder, a bucket URI or ``kafka://host:port/topic``.
    ``follow``: read until stopped (new messages of a topic, new videos of a folder)."""
    return video_source(text, shard_seconds=shard_seconds, priority=priority, follow=follow)


def parse_output(text: str | Sink, *, catalog: Mapping[str, str] | None = None) -> Sink:
    """An output from its text: ``iceberg://ns.table``, ``jsonl://dir``, ``parquet://dir``
    or a directory (JSON lines). Iceberg catalog properties come from ``catalog`` and the
    URI's query (``?uri=sqlite:///c.db&warehouse=/wh``); none: the embedded catalog."""
    if isinstance(text, Sink):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"output {text!r}: {_OUTPUT_HELP}")
    if text.startswith("iceberg://"):
        from tideflow.streaming.connectors import IcebergSink

        parsed = urllib.parse.urlsplit(text)
        table = parsed.netloc + parsed.path.rstrip("/")
        if "." not in table.strip(".") or table.startswith(".") or "/" in table:
            raise ConfigError(f"output {redact(text)!r}: {_OUTPUT_HELP}")
        properties = {**dict(catalog or {}), **dict(urllib.parse.parse_qsl(parsed.query))}
        return IcebergSink(table, catalog=properties, schema=OUTPUT_SCHEMA)
    if text.startswith("parquet://"):
        return ParquetSink(text.removeprefix("parquet://"))
    if text.startswith("jsonl://"):
        text = text.removeprefix("jsonl://")
        if text.partition("?")[0].endswith(".jsonl"):
            return JSONLFileSink(text)
        return JSONLSink(text)
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme and scheme not in ("file", "s3", "hdfs", "gs", "abfs"):
        raise ConfigError(f"output {redact(text)!r}: unknown scheme {scheme!r}; {_OUTPUT_HELP}")
    if text.partition("?")[0].endswith(".jsonl"):
        return JSONLFileSink(text)
    return JSONLSink(text)


def _spelling(text: str | Source | Sink) -> str:
    """A source or output as it counts for the default job id: a local path in its normal
    form (``videos/``, ``./videos`` and ``videos`` are one job), anything else as given."""
    if isinstance(text, str) and text and "://" not in text:
        return os.path.normpath(text)
    return str(text)


def _where(text: str) -> str:
    """Where an output writes, to compare two outputs: a local path made absolute and
    normal, a URI without its trailing slashes."""
    target = _local_target(text)
    if target is not None:
        return target[0]
    return text.partition("?")[0].rstrip("/")


def _local_target(text: str) -> tuple[str, bool] | None:
    """The local path an output text names and whether it is one file (``FILE.jsonl``);
    None for Iceberg and remote outputs."""
    if text.startswith("iceberg://"):
        return None
    text = text.removeprefix("parquet://").removeprefix("jsonl://").removeprefix("file://")
    if "://" in text:
        return None
    path = text.partition("?")[0]
    if not path:
        return None
    return os.path.abspath(path), path.endswith(".jsonl")


def _check_local_target(label: str, text: str, *, folder_only: bool = False) -> None:
    """A local output that can never be written (a folder where a file is, a file where a
    folder is) is a :class:`ConfigError` naming it, before any video is read."""
    target = _local_target(text)
    if target is None:
        return
    path, is_file = target
    is_file = is_file and not folder_only
    if is_file and os.path.isdir(path):
        raise ConfigError(f"{label} {text!r} is a directory: expected a FILE.jsonl to write")
    folder = os.path.dirname(path) if is_file else path
    while not os.path.exists(folder):  # the nearest part of the path that is there
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        expected = "a FILE.jsonl in a directory" if is_file else "a directory (or a new path)"
        message = f"{label} {text!r}: {folder!r} is a file, not a directory: expected {expected}"
        raise ConfigError(message)


def _list_videos(source: VideoFolderSource) -> list[str]:
    """The source's videos; a folder that cannot be read (an unreachable endpoint, refused
    credentials) is a :class:`ConfigError` naming it, its URI's credentials masked."""
    try:
        return source.list_videos()
    except OSError as error:
        seen = " ".join(redact(str(error)).split())  # one line
        message = (
            f"video source {redact(source.uri)!r} cannot be read: {seen}; expected a folder "
            "of videos or a video file this machine can reach (for s3://, check "
            "endpoint_override, scheme and the credentials)"
        )
    raise ConfigError(message)


@dataclass
class OcrRunResult:
    """What :meth:`OcrApp.run` returns."""

    job_id: str
    job: JobResult
    """The engine's metrics of this run (stages, checkpoints, dead letters)."""
    completed: list[VideoResult] = field(default_factory=list)
    """Videos committed to the outputs in this run (a rerun after a crash may repeat some)."""
    failed: list[VideoFailure] = field(default_factory=list)
    """Videos (and messages) sent to the dead-letter output in this run."""
    dead_letters: str = ""
    """Where the dead letters are (JSON lines)."""


class OcrApp:
    """Video OCR at scale: a source of videos, outputs, and a checkpointed job.

    ``source``: a folder or bucket (``s3://…``), ``kafka://host:port/topic``, or a
    :class:`~tideflow.streaming.connectors.Source` of shard rows. ``outputs``: texts for
    :func:`parse_output` or sinks. The job id defaults to a hash of the source and outputs,
    so running the same command again resumes it (and a finished one writes nothing new).

    ``queue_limit`` bounds the shards waiting before each stage. Keep it small: a shard is
    seconds of work, and a checkpoint completes only once every shard read before its
    barrier has been gathered, so a deep read-ahead delays both the first committed result
    and the point a crashed job resumes from.

    ``epoch_shards`` caps the shards read per checkpoint epoch (default: twice the OCR
    pool's largest size, about two rounds of OCR). A video's result is committed with its
    epoch, once every shard of that epoch is done: the cap keeps that wait short however
    fast the shards are read; the checkpoint interval still applies.
    """

    def __init__(
        self,
        source: str | Source,
        outputs: Sequence[str | Sink],
        *,
        config: OcrConfig | None = None,
        catalog: Mapping[str, str] | None = None,
        state_uri: str = ".tideflow/ocr",
        job_id: str | None = None,
        dead_letters: str | None = None,
        checkpoint_interval_s: float = 1.0,
        queue_limit: int = 2,
        follow: bool = False,
        epoch_shards: int | None = None,
    ) -> None:
        self.config = config or OcrConfig()
        if isinstance(outputs, str | Sink):
            outputs = [outputs]
        if not outputs:
            raise ConfigError(f"OcrApp needs at least one output: {_OUTPUT_HELP}")
        self.source = parse_source(
            source,
            shard_seconds=self.config.shard_seconds,
            priority=self.config.priority,
            follow=follow,
        )
        if (
            isinstance(self.source, VideoFolderSource)
            and self.source.bounded
            and not _list_videos(self.source)
        ):
            raise ConfigError(
                f"video source {self.source!r} holds no videos: expected files ending in "
                f"{', '.join(self.source.extensions)} (hidden files and folders are skipped)"
            )
        self.outputs = [parse_output(o, catalog=catalog) for o in outputs]
        for output in outputs:
            if isinstance(output, str):
                _check_local_target("output", output)
        key = json.dumps([_spelling(source), [_spelling(o) for o in outputs]])
        self.job_id = job_id or f"ocr-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
        if "://" not in state_uri:
            state_uri = os.path.abspath(state_uri)
        self.state_uri = state_uri
        self.dead_letters = dead_letters or f"{state_uri.rstrip('/')}/{self.job_id}/dead_letters"
        _check_local_target("dead-letter output", self.dead_letters, folder_only=True)
        dead = _where(self.dead_letters)
        for output in outputs:
            if isinstance(output, str) and _where(output) == dead:
                raise ConfigError(
                    f"dead-letter output {redact(self.dead_letters)!r} is also the output "
                    f"{redact(output)!r}: expected a folder of its own (failures have their "
                    "own columns: video_id, uri, stage, error, record)"
                )
        if (
            isinstance(checkpoint_interval_s, bool)
            or not isinstance(checkpoint_interval_s, int | float)
            or not 0 < checkpoint_interval_s < float("inf")
        ):
            raise ConfigError(
                f"checkpoint_interval_s must be a number of seconds > 0; got "
                f"{checkpoint_interval_s!r}"
            )
        self.checkpoint_interval_s = checkpoint_interval_s
        if isinstance(queue_limit, bool) or not isinstance(queue_limit, int) or queue_limit < 1:
            raise ConfigError(f"queue_limit must be an int >= 1; got {queue_limit!r}")
        self.queue_limit = queue_limit
        if epoch_shards is not None and (
            isinstance(epoch_shards, bool) or not isinstance(epoch_shards, int) or epoch_shards < 1
        ):
            raise ConfigError(f"epoch_shards must be an int >= 1 or None; got {epoch_shards!r}")
        self.epoch_shards = epoch_shards

    def pipeline(self) -> Pipeline:
        """The whole pipeline, sink included."""
        sink = ResultSink(self.outputs, self.dead_letters)
        return build_pipeline(self.config, self.source).write(sink)

    def checkpoint(self) -> CheckpointConfig:
        shards = self.epoch_shards
        if shards is None:
            shards = 2 * (self.config.ocr_concurrency or (1, _cluster_cpus()))[1]
        return CheckpointConfig(
            uri=self.state_uri, interval_s=self.checkpoint_interval_s, max_batches=shards
        )

    def start(
        self,
        *,
        on_complete: Callable[[list[VideoResult]], None] | None = None,
        on_failure: Callable[[list[VideoFailure]], None] | None = None,
        complete_every: int = 100,
        on_progress: Callable[[JobResult], None] | None = None,
    ) -> Job:
        """Start the job in the background (a :class:`tideflow.streaming.Job`)."""
        return self.pipeline().start(
            job_id=self.job_id,
            **self._options(on_complete, on_failure, complete_every, on_progress),
        )

    def run(
        self,
        *,
        on_complete: Callable[[list[VideoResult]], None] | None = None,
        on_failure: Callable[[list[VideoFailure]], None] | None = None,
        complete_every: int = 100,
        progress: bool | None = None,
        on_progress: Callable[[JobResult], None] | None = None,
    ) -> OcrRunResult:
        """Run until the source ends (or Ctrl-C); callbacks get batches of at most
        ``complete_every`` videos once their results are committed — at least once (again
        after a crash), so make them idempotent."""
        completed: list[VideoResult] = []
        failed: list[VideoFailure] = []
        lock = threading.Lock()

        def done(batch: list[VideoResult]) -> None:
            with lock:
                completed.extend(batch)
            if on_complete is not None:
                on_complete(batch)

        def fail(batch: list[VideoFailure]) -> None:
            with lock:
                failed.extend(batch)
            if on_failure is not None:
                on_failure(batch)

        job = self.pipeline().run(
            job_id=self.job_id,
            progress=progress,
            **self._options(done, fail, complete_every, on_progress),
        )
        return OcrRunResult(
            job_id=self.job_id,
            job=job,
            completed=completed,
            failed=failed,
            dead_letters=self.dead_letters,
        )

    def _options(
        self,
        on_complete: Callable[[list[VideoResult]], None] | None,
        on_failure: Callable[[list[VideoFailure]], None] | None,
        complete_every: int,
        on_progress: Callable[[JobResult], None] | None,
    ) -> dict[str, Any]:
        def outcomes(items: list[Any]) -> None:
            ok = [
                VideoResult(video_id=o["video_id"], uri=o["uri"], segments=o["segments"])
                for o in items
                if o["status"] == "ok"
            ]
            bad = [
                VideoFailure(
                    video_id=o["video_id"],
                    uri=o["uri"],
                    stage=o["stage"] or "ocr",
                    reason=o["error"] or "",
                )
                for o in items
                if o["status"] != "ok"
            ]
            if ok and on_complete is not None:
                on_complete(ok)
            if bad and on_failure is not None:
                on_failure(bad)

        return {
            "checkpoint": self.checkpoint(),
            "queue_limit": self.queue_limit,
            "dead_letter": DeadLetters(self.dead_letters, on_failure),
            "on_complete": outcomes,
            "id_column": "outcome",
            "complete_every": complete_every,
            "on_progress": on_progress,
        }


def read_results(output: str, *, catalog: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The result rows in an output (``iceberg://…`` or a JSON lines / Parquet directory)."""
    sink = parse_output(output, catalog=catalog)
    if type(sink).__name__ == "IcebergSink":
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        from tideflow.streaming.connectors import load_catalog

        properties = dict(getattr(sink, "catalog", None) or {})
        try:
            table = load_catalog(**properties).load_table(getattr(sink, "table", ""))
        except (NoSuchTableError, NoSuchNamespaceError):
            return []
        rows: list[dict[str, Any]] = table.scan().to_arrow().to_pylist()
        return rows
    path = str(getattr(sink, "path", None) or getattr(sink, "uri", output))
    if "://" in path and not path.startswith("file://"):
        raise ConfigError(f"read_results reads local directories and Iceberg; got {output!r}")
    path = path.removeprefix("file://")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    if not os.path.isdir(path):
        return []
    out: list[dict[str, Any]] = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if name.startswith(("_", ".")) or not os.path.isfile(full):
            continue
        if name.endswith(".jsonl"):
            with open(full, encoding="utf-8") as handle:
                out += [json.loads(line) for line in handle if line.strip()]
        elif name.endswith(".parquet"):
            import pyarrow.parquet as pq

            out += pq.read_table(full).to_pylist()
    return out


def read_dead_letters(uri: str) -> list[dict[str, Any]]:
    """The dead letters (JSON lines) in a dead-letter directory."""
    return read_results(uri)
