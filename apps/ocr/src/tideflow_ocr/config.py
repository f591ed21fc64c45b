"""What a run of the OCR app is told: sampling, sharding, OCR, filters, pools."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from tideflow_ocr.errors import ConfigError

__all__ = ["BUNDLED_LANGS", "OcrConfig"]

BUNDLED_LANGS = frozenset({"en", "ch", "chinese_cht", "japan", "de", "fr", "es", "it", "pt", "nl"})
"""Languages that rapidocr's bundled multilingual PP-OCRv6 model reads (no download)."""


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"OcrConfig.{name} must be a number > 0; got {value!r}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"OcrConfig.{name} must be finite; got {value!r}")


def _fraction(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"OcrConfig.{name} must be a number in [0, 1]; got {value!r}")


def _pool(name: str, value: object) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 1 <= value[0] <= value[1]
    ):
        raise ConfigError(
            f"OcrConfig.{name} must be an int >= 1 or (min, max) with 1 <= min <= max; "
            f"got {value!r}"
        )
    return value


@dataclass(frozen=True, kw_only=True)
class OcrConfig:
    """How videos are cut, sampled, read and filtered. Every field has a working default."""

    langs: tuple[str, ...] = ("en", "ch")
    """Languages on screen. The bundled PP-OCRv6 model reads all of :data:`BUNDLED_LANGS`
    with one recognizer; others would need a model download and are refused."""
    shard_seconds: float = 10.0
    """Length of a shard: each video is cut into shards OCR'd in parallel."""
    fps: float = 1.0
    """Frames sampled per second (at the middle of each 1/fps interval)."""
    keyframes: bool = False
    """Sample the keyframes instead of ``fps`` (cheaper decode; coarser segment times)."""
    max_side: int = 1280
    """Frames larger than this (longest side, pixels) are scaled down before OCR."""
    min_score: float = 0.6
    """Layer 1: drop text lines the recognizer scored below this."""
    min_box_height: float = 0.03
    """Layer 1: drop lines whose box is lower than this fraction of the frame height."""
    region: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    """Layer 1: keep lines whose box centre lies in ``(x0, y0, x1, y1)`` (fractions)."""
    similarity: float = 0.8
    """Layer 2: lines this similar in consecutive frames are one line (1 − edit distance ÷
    length: 0.8 lets a 10-character line differ in 2 characters)."""
    max_gap_frames: int = 1
    """Layer 2: a line missing from up to this many sampled frames stays one segment."""
    retries: int = 2
    """Shard-level retries of a decode or OCR error before the shard (and its video) fails.
    An actor that dies is replaced by the engine and its shard retried as well."""
    ocr_concurrency: tuple[int, int] | None = None
    """OCR actors, ``(min, max)`` to autoscale (default: ``(1, CPUs of the cluster)``)."""
    decode_concurrency: tuple[int, int] = (1, 2)
    """Decode actors, ``(min, max)``."""
    ocr_threads: int = 1
    """onnxruntime threads per OCR actor (one actor per core scales better than threads)."""
    priority: Mapping[str, int] = field(default_factory=dict)
    """Folder sources: glob of a video's relative path → priority (higher goes first)."""

    def __post_init__(self) -> None:
        langs: tuple[object, ...] = ()
        if isinstance(self.langs, str):
            langs = (self.langs,)
        elif isinstance(self.langs, tuple | list | set | frozenset):
            langs = tuple(self.langs)
        if not langs or not all(isinstance(x, str) and x for x in langs):
            raise ConfigError(f"OcrConfig.langs must be language codes; got {self.langs!r}")
        langs = tuple(str(x) for x in langs)
        unknown = sorted({str(x) for x in langs} - BUNDLED_LANGS)
        if unknown:
            raise ConfigError(
                f"OcrConfig.langs: {unknown} need a model download; the bundled model reads "
                f"{sorted(BUNDLED_LANGS)}"
            )
        object.__setattr__(self, "langs", langs)
        _positive("shard_seconds", self.shard_seconds)
        _positive("fps", self.fps)
        _fraction("min_score", self.min_score)
        _fraction("min_box_height", self.min_box_height)
        _fraction("similarity", self.similarity)
        if isinstance(self.max_side, bool) or not isinstance(self.max_side, int):
            raise ConfigError(f"OcrConfig.max_side must be an int >= 32; got {self.max_side!r}")
        if self.max_side < 32:
            raise ConfigError(f"OcrConfig.max_side must be an int >= 32; got {self.max_side!r}")
        region = tuple(self.region)
        if (
            len(region) != 4
            or not all(isinstance(v, int | float) and 0 <= v <= 1 for v in region)
            or not (region[0] < region[2] and region[1] < region[3])
        ):
            raise ConfigError(
                "OcrConfig.region must be (x0, y0, x1, y1) fractions with x0 < x1 and y0 < y1; "
                f"got {self.region!r}"
            )
        object.__setattr__(self, "region", tuple(float(v) for v in region))
        for name in ("max_gap_frames", "retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"OcrConfig.{name} must be an int >= 0; got {value!r}")
        if self.ocr_concurrency is not None:
            object.__setattr__(
                self, "ocr_concurrency", _pool("ocr_concurrency", self.ocr_concurrency)
            )
        object.__setattr__(
            self, "decode_concurrency", _pool("decode_concurrency", self.decode_concurrency)
        )
        if isinstance(self.ocr_threads, bool) or not isinstance(self.ocr_threads, int):
            raise ConfigError(
                f"OcrConfig.ocr_threads must be an int >= 1; got {self.ocr_threads!r}"
            )
        if self.ocr_threads < 1:
            raise ConfigError(
                f"OcrConfig.ocr_threads must be an int >= 1; got {self.ocr_threads!r}"
            )
        if not isinstance(self.priority, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in self.priority.items()
        ):
            raise ConfigError(
                f"OcrConfig.priority must map glob patterns to ints; got {self.priority!r}"
            )
        object.__setattr__(self, "priority", dict(self.priority))

    @property
    def interval_s(self) -> float:
        """The sampling interval (1 / fps)."""
        return 1.0 / self.fps
