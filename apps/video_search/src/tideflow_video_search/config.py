"""What an ingest is configured with; every field has a default that works on a laptop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tideflow.core.errors import ConfigError

__all__ = ["IngestConfig"]

Pool = int | tuple[int, int]


def _pool(name: str, value: object) -> None:
    ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 1) or (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 1 <= value[0] <= value[1]
    )
    if not ok:
        raise ConfigError(f"IngestConfig.{name} must be an int >= 1 or (min, max); got {value!r}")


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """How videos become index rows."""

    fps: float = 1.0
    """Frames sampled per second of video (ignored with ``keyframes``)."""
    keyframes: bool = False
    """Sample the keyframes only (each stands for the time until the next one)."""
    shard_seconds: float = 10.0
    """Length of a shard: the unit of work, of parallelism and of resume."""
    max_side: int = 640
    """Frames are scaled down to at most this many pixels on their longer side."""
    dedup: bool = True
    """Drop near-identical consecutive frames before OCR (perceptual hash + histogram)."""
    ocr: bool = True
    """Read burned-in text (rapidocr)."""
    subtitles: bool = True
    """Read embedded subtitle streams and sidecar .srt/.vtt files."""
    speech: bool = True
    """Transcribe the audio track (faster-whisper)."""
    whisper_model: str = "base"
    """``base`` (multilingual, ships in packages), ``tiny.en`` (fast, English), or any model
    faster-whisper takes (a hub name or a local folder)."""
    speech_language: str | None = None
    """Language of the speech (None: detected per shard)."""
    embedding: str = "e5"
    """``e5`` (multilingual-e5-small), ``minilm`` (English) or a sentence-transformers folder."""
    segment_seconds: float = 6.0
    """Consecutive subtitle cues and speech segments are merged up to this length."""
    checkpoint_interval_s: float = 3.0
    """Seconds between checkpoints: a killed ingest redoes at most about this much work."""
    epoch_shards: int = 2
    """At most this many shards per checkpoint epoch (a barrier comes after them, or after
    the interval, whichever is first). A segment is committed once every shard of its
    epoch has passed every stage: small epochs keep that wait — and what a crash redoes —
    short, however deep the pipeline."""
    retries: int = 2
    """Retries of a failed decode / OCR of a shard before it goes to the dead letters."""
    ocr_pool: Pool | None = None
    """OCR actors (default: 1 to half the cluster's CPU slots, less one)."""
    speech_pool: Pool | None = None
    """Speech actors (default: 2 to half the cluster's CPU slots, less one)."""
    embed_pool: Pool = 1
    """Embedding actors."""
    priority: Mapping[str, int] = field(default_factory=dict)
    """Glob of a video's path (relative to the source folder) → priority; higher goes first."""

    def __post_init__(self) -> None:
        for name in ("fps", "shard_seconds", "segment_seconds", "checkpoint_interval_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"IngestConfig.{name} must be a number > 0; got {value!r}")
        if (
            isinstance(self.max_side, bool)
            or not isinstance(self.max_side, int)
            or self.max_side < 32
        ):
            raise ConfigError(f"IngestConfig.max_side must be an int >= 32; got {self.max_side!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"IngestConfig.retries must be an int >= 0; got {self.retries!r}")
        shards = self.epoch_shards
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise ConfigError(f"IngestConfig.epoch_shards must be an int >= 1; got {shards!r}")
        for name in ("ocr_pool", "speech_pool"):
            if getattr(self, name) is not None:
                _pool(name, getattr(self, name))
        _pool("embed_pool", self.embed_pool)
        if not (self.ocr or self.subtitles or self.speech):
            raise ConfigError("IngestConfig: at least one of ocr, subtitles, speech must be on")
        if not isinstance(self.embedding, str) or not self.embedding:
            raise ConfigError(
                f"IngestConfig.embedding must be e5, minilm or a folder; got {self.embedding!r}"
            )
