"""The ingest job: videos → segments with vectors → a Lance table, exactly once.

source (probe + shard) → frames (decode + near-duplicate removal + subtitles) → OCR →
speech → segments → embeddings (LLM operator) → index rows (in the I/O actor) → Lance
(vector and full-text indexes). Every model stage is its own elastic actor pool, so the
shards of many videos are at different stages at once; a checkpoint every
``checkpoint_interval_s`` seconds records the source positions (the next shard of the video
in progress), so an ingest killed and run again with the same command resumes mid-video and
writes no segment twice.

>>> job = Ingest("videos/", "index/", config=IngestConfig(fps=1))
>>> result = job.run()                                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tideflow.core.errors import ConfigError
from tideflow.core.ray_start import start_ray
from tideflow.streaming import CheckpointConfig, Job, JobResult, Pipeline
from tideflow.streaming.connectors import Source
from tideflow_video_search.config import IngestConfig
from tideflow_video_search.schema import TABLE_NAME, segment_schema
from tideflow_video_search.search import IndexMeta, read_meta, write_meta
from tideflow_video_search.stages import BuildSegments, ExtractFrames, ToIndexRows

__all__ = [
    "Ingest",
    "IngestResult",
    "build_pipeline",
    "local_cpus",
    "parse_source",
    "queue_limit_for",
    "required_cpus",
]

STATE_DIR = "_state"
"""Under the index directory: checkpoints and dead letters of its ingest jobs."""


def _cluster_cpus() -> int:
    import ray

    if ray.is_initialized():
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, os.cpu_count() or 1)


def local_cpus() -> int:
    """Logical CPUs for a local Ray started by the app: twice the machine's cores, at
    least 6.

    Each model stage (OCR, speech, embeddings) holds one CPU slot per actor. The slots
    admit actors; the OS shares the cores among them. Two slots per core let the speech
    and OCR pools both reach their size while the embedding actor keeps its own: a stage
    is not busy all the time, and that sharing is the pipelining."""
    return max(6, 2 * (os.cpu_count() or 1))


def default_pools(cpus: int) -> dict[str, tuple[int, int]]:
    """OCR and speech pools on a cluster of ``cpus`` CPU slots: each may grow to half of
    them, so neither starves the other; speech, the heaviest stage, starts with two."""
    half = max(1, cpus // 2 - 1)
    return {"ocr": (1, half), "speech": (min(2, half), half)}


def queue_limit_for(config: IngestConfig, cpus: int) -> int | None:
    """Batches that may wait before each stage: 2 while no model pool can grow past two
    actors (a 2-core machine), else ``None`` — the engine's default, which scales each
    stage's queue with its pool (2 × its max actors × its max in flight).

    A stage has at most the next stage's queue limit of calls running, so a fixed limit of 2
    caps every pool at two busy actors, however many cores the cluster has. On 2 cores that
    is the better setting (measured, ``docs/benchmarks.md#video_search``: with 4 or 8 the
    same ingest spent ~15 % more CPU; a pool still grows to its two actors when its own
    calls hold its queue back); beyond it the pools need room."""
    pools = default_pools(cpus)
    sizes = [config.ocr_pool or pools["ocr"], config.speech_pool or pools["speech"]]
    sizes.append(config.embed_pool)
    biggest = max(size if isinstance(size, int) else size[1] for size in sizes)
    return 2 if biggest <= 2 else None


def _check_index_dir(index_dir: Path) -> None:
    """Refuse an index path that cannot be a directory (a file, or under one) before any
    work starts."""
    for path in (index_dir, *index_dir.parents):
        if path.exists():
            if not path.is_dir():
                shown = "it" if path == index_dir else str(path)
                message = (
                    f"the index {str(index_dir)!r} must be a directory (new or made by an "
                    f"earlier ingest), but {shown} is a file"
                )
                raise ConfigError(message)
            return


def required_cpus(config: IngestConfig) -> int:
    """CPU slots one actor of every model stage needs (the least the cluster must have)."""
    return int(config.ocr) + int(config.speech) + 1  # + the embedding stage


def parse_source(
    text: str | Source,
    *,
    shard_seconds: float = 10.0,
    priority: Mapping[str, int] | None = None,
    follow: bool = False,
) -> Source:
    """A source from its text: a folder, a bucket URI or ``kafka://host:port/topic``
    (:func:`tideflow.media.sources.video_source`); a watched folder is listed every 0.5 s."""
    from tideflow.media.sources import video_source

    return video_source(
        text, shard_seconds=shard_seconds, priority=priority, follow=follow, poll_s=0.5
    )


def build_pipeline(config: IngestConfig, source: Source, *, dim: int = 384) -> Pipeline:
    """The ingest pipeline without its sink (rows out: the index table's schema)."""
    from tideflow.media.embeddings import embedding_processor

    cpus = _cluster_cpus()
    pipeline = Pipeline.read(source, batch_size=1, priority_column="priority").map_batches(
        ExtractFrames, name="frames", num_cpus=0, concurrency=(1, 2), fn_constructor_args=(config,)
    )
    if config.ocr:
        from tideflow.media.ocr import OcrFrames

        pipeline = pipeline.map_batches(
            OcrFrames,
            name="ocr",
            num_cpus=1,
            concurrency=config.ocr_pool or default_pools(cpus)["ocr"],
            fn_constructor_kwargs={"threads": 1, "retries": config.retries, "keep_pixels": False},
        )
    if config.speech:
        from tideflow.media.asr import SpeechRecognizer

        pipeline = pipeline.map_batches(
            SpeechRecognizer,
            name="speech",
            num_cpus=1,
            concurrency=config.speech_pool or default_pools(cpus)["speech"],
            fn_constructor_kwargs={
                "model": config.whisper_model,
                "language": config.speech_language,
                "cpu_threads": 1,
            },
        )
    pipeline = pipeline.map_batches(
        BuildSegments, name="segments", num_cpus=0, fn_constructor_args=(config,)
    )
    pipeline = embedding_processor(
        config.embedding, concurrency=config.embed_pool, num_cpus=1, batch_size=64
    )(pipeline)
    # Light, right before the sink: run in the I/O actor (fused), no actor of its own.
    return pipeline.map_batches(
        ToIndexRows, name="rows", num_cpus=0, fused=True, fn_constructor_args=(dim,)
    )


@dataclass
class IngestResult:
    """What :meth:`Ingest.run` returns."""

    job_id: str
    job: JobResult
    """The engine's metrics (stages, checkpoints, dead letters)."""
    index_dir: str
    dead_letters: str
    """Where this job's dead letters are (JSON lines)."""

    @property
    def rows_written(self) -> int:
        return int(self.job.rows_out)


class Ingest:
    """An ingest of ``source`` into the index directory ``index_dir``.

    The job id is derived from the source and the index, so the same command run again
    resumes the same job (and a finished bounded one writes nothing new). ``queue_limit``:
    batches that may wait before each stage (default: :func:`queue_limit_for` the
    cluster). :meth:`run` and :meth:`start` start a local Ray when none runs, then size the
    pools to it.
    """

    def __init__(
        self,
        source: str | Source,
        index_dir: str | os.PathLike[str],
        *,
        config: IngestConfig | None = None,
        follow: bool = False,
        job_id: str | None = None,
        queue_limit: int | None = None,
    ) -> None:
        from tideflow.media.embeddings import embedding_dim

        self.config = config or IngestConfig()
        self.index_dir = Path(index_dir).absolute()
        _check_index_dir(self.index_dir)
        self.source = parse_source(
            source,
            shard_seconds=self.config.shard_seconds,
            priority=self.config.priority,
            follow=follow,
        )
        meta = read_meta(self.index_dir)
        if meta is not None and meta.embedding != self.config.embedding:
            message = (
                f"index {str(self.index_dir)!r} holds {meta.embedding!r} vectors; this ingest "
                f"would add {self.config.embedding!r} ones: use --embedding {meta.embedding} "
                "or a new index directory"
            )
            raise ConfigError(message)
        self.dim = meta.dim if meta is not None else embedding_dim(self.config.embedding)
        key = json.dumps([str(source), str(self.index_dir)])
        self.job_id = job_id or f"ingest-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
        if queue_limit is not None and (
            isinstance(queue_limit, bool) or not isinstance(queue_limit, int) or queue_limit < 1
        ):
            message = (
                f"queue_limit must be an int >= 1 or None (sized to the pools); got {queue_limit!r}"
            )
            raise ConfigError(message)
        self.queue_limit = queue_limit
        self.state_uri = str(self.index_dir / STATE_DIR)
        self.dead_letters = f"{self.state_uri}/{self.job_id}/dead_letters"

    def sink(self) -> Any:
        from tideflow.streaming.connectors import LanceSink

        return LanceSink(
            str(self.index_dir / TABLE_NAME),
            schema=segment_schema(self.dim),
            scalar_indexes={"search_text": "INVERTED", "source": "BITMAP"},
            scalar_index_every_rows=2_000,
            index={
                "column": "vector",
                "index_type": "IVF_PQ",
                "metric": "cosine",
                "num_partitions": 64,
                "num_sub_vectors": 48,
            },
            index_every_rows=20_000,
        )

    def pipeline(self) -> Pipeline:
        return build_pipeline(self.config, self.source, dim=self.dim).write(self.sink())

    def _options(self, on_progress: Callable[[JobResult], None] | None) -> dict[str, Any]:
        # Unless Ray runs already; a Ctrl-C while it starts leaves none of its processes running.
        start_ray(num_cpus=local_cpus(), include_dashboard=False, log_to_driver=False)
        needed, have = required_cpus(self.config), _cluster_cpus()
        if have < needed:
            message = (
                f"the ingest needs at least {needed} CPUs (one actor of each model stage: "
                f"OCR, speech, embeddings) but the Ray cluster has {have}: start Ray with "
                f"num_cpus >= {needed} (video-search ingest --num-cpus {needed})"
            )
            raise ConfigError(message)
        write_meta(self.index_dir, IndexMeta(embedding=self.config.embedding, dim=self.dim))
        return {
            "checkpoint": CheckpointConfig(
                uri=self.state_uri,
                interval_s=self.config.checkpoint_interval_s,
                max_batches=self.config.epoch_shards,
            ),
            "queue_limit": (
                self.queue_limit
                if self.queue_limit is not None
                else queue_limit_for(self.config, have)
            ),
            "on_progress": on_progress,
        }

    def start(self, *, on_progress: Callable[[JobResult], None] | None = None) -> Job:
        """Start in the background; ``job.stop()`` ends a followed source cleanly."""
        options = self._options(on_progress)  # starts Ray first: the pools are sized to it
        return self.pipeline().start(job_id=self.job_id, **options)

    def run(
        self,
        *,
        progress: bool | None = None,
        on_progress: Callable[[JobResult], None] | None = None,
        metrics_port: int | None = None,
    ) -> IngestResult:
        """Run until the source ends (or Ctrl-C: the epoch in flight is committed first)."""
        options = self._options(on_progress)  # starts Ray first: the pools are sized to it
        result = self.pipeline().run(
            job_id=self.job_id, progress=progress, metrics_port=metrics_port, **options
        )
        return IngestResult(
            job_id=self.job_id,
            job=result,
            index_dir=str(self.index_dir),
            dead_letters=self.dead_letters,
        )
