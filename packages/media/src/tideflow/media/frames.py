"""Decoding shards into frames: a stage for ``Pipeline.map_batches``.

>>> pipeline = Pipeline.read(VideoFolderSource(uri="videos/"), batch_size=1).map_batches(
...     DecodeFrames, fn_constructor_kwargs={"fps": 2.0, "max_side": 960}, num_cpus=0
... )                                                                    # doctest: +SKIP

A row in is one shard (:data:`~tideflow.media.sources.SHARD_SCHEMA`); the same row comes
out with its sampled frames: their times (``frames``, :data:`FRAME_TYPE`), their RGB pixels
(``pixels``: H × W × 3 uint8 bytes each, all of one size ``frame_h`` × ``frame_w``;
:func:`frame_images` turns them back into arrays) and ``error``, null unless the shard could
not be decoded after ``retries`` retries. Errors travel as data, so that a stage gathering
a video's shards hears of every shard.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.media.errors import ConfigError
from tideflow.media.video import sample_frames

__all__ = ["FRAME_TYPE", "DecodeFrames", "frame_images"]

FRAME_TYPE = pa.struct([("t", pa.float64()), ("t0", pa.float64()), ("t1", pa.float64())])
"""A sampled frame's time ``t`` and the span ``[t0, t1)`` of the video it stands for."""

_COLUMNS = (
    ("frames", pa.list_(FRAME_TYPE)),
    ("pixels", pa.list_(pa.binary())),
    ("frame_h", pa.int32()),
    ("frame_w", pa.int32()),
    ("error", pa.string()),
)

T = TypeVar("T")


def frame_images(row: Mapping[str, Any]) -> list[np.ndarray]:
    """The frames of a decoded row (``pixels``, ``frame_h``, ``frame_w``) as H × W × 3 uint8
    RGB arrays (read-only views of the row's bytes)."""
    h, w = int(row["frame_h"]), int(row["frame_w"])
    return [np.frombuffer(pixels, np.uint8).reshape(h, w, 3) for pixels in row["pixels"]]


def _with_retries(
    what: str, retries: int, fn: Callable[[], T], log: Any, **fields: Any
) -> tuple[T | None, str | None]:
    """``fn()`` with up to ``retries`` retries: ``(result, None)``, or ``(None, error)`` with
    the last error's type and text (credentials masked)."""
    error = None
    for attempt in range(retries + 1):
        try:
            return fn(), None
        except Exception as e:
            error = f"{type(e).__name__}: {redact(str(e))}"
            log.warning(f"{what}.retried", attempt=attempt + 1, error=error[:300], **fields)
            if attempt < retries:
                time.sleep(min(0.05 * 2**attempt, 1.0))
    return None, error


def _check_retries(owner: str, retries: object) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"{owner}.retries must be an int >= 0; got {retries!r}")


def _with_columns(table: pa.Table, columns: Mapping[str, pa.Array]) -> pa.Table:
    """``table`` with ``columns`` appended (an existing column of the same name replaced)."""
    table = table.drop_columns([name for name in columns if name in table.column_names])
    for name, values in columns.items():
        table = table.append_column(name, values)
    return table


class DecodeFrames:
    """Decode: the sampled frames of each shard (PyAV), as raw RGB bytes.

    ``fps`` frames per second at the middle of each ``1/fps`` interval, or the keyframes
    (``keyframes=True``: cheaper, coarser times); frames whose longest side exceeds
    ``max_side`` are scaled down. A shard that fails ``retries + 1`` times gets no frames and
    ``error = "decode: …"``; a row that arrives with an ``error`` is passed on undecoded.
    """

    def __init__(
        self,
        fps: float = 1.0,
        keyframes: bool = False,
        max_side: int = 1280,
        retries: int = 2,
    ) -> None:
        if (
            isinstance(fps, bool)
            or not isinstance(fps, int | float)
            or not fps > 0
            or not math.isfinite(fps)
        ):
            raise ConfigError(f"DecodeFrames.fps must be a number > 0; got {fps!r}")
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 32:
            raise ConfigError(f"DecodeFrames.max_side must be an int >= 32; got {max_side!r}")
        _check_retries("DecodeFrames", retries)
        self.fps = float(fps)
        self.keyframes = bool(keyframes)
        self.max_side = max_side
        self.retries = retries
        self._log = get_logger("tideflow.media.frames")

    def __repr__(self) -> str:
        return (
            f"DecodeFrames(fps={self.fps:g}, keyframes={self.keyframes}, "
            f"max_side={self.max_side}, retries={self.retries})"
        )

    def _decode(self, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("error") is not None:
            return {"frames": [], "pixels": [], "frame_h": 0, "frame_w": 0, "error": row["error"]}
        frames, error = _with_retries(
            "decode",
            self.retries,
            lambda: sample_frames(
                row["uri"],
                row["start_s"],
                row["end_s"],
                duration_s=row["duration_s"],
                fps=self.fps,
                keyframes=self.keyframes,
                max_side=self.max_side,
            ),
            self._log,
            video_id=row.get("video_id"),
            shard=row.get("shard"),
        )
        frames = frames or []
        return {
            "frames": [{"t": f.t, "t0": f.t0, "t1": f.t1} for f in frames],
            "pixels": [np.ascontiguousarray(f.image).tobytes() for f in frames],
            "frame_h": frames[0].image.shape[0] if frames else 0,
            "frame_w": frames[0].image.shape[1] if frames else 0,
            "error": f"decode: {error}" if error else None,
        }

    def __call__(self, table: pa.Table) -> pa.Table:
        wanted = ["uri", "start_s", "end_s", "duration_s", "video_id", "shard", "error"]
        rows = table.select([c for c in wanted if c in table.column_names]).to_pylist()
        decoded = [self._decode(row) for row in rows]
        return _with_columns(
            table,
            {name: pa.array([d[name] for d in decoded], kind) for name, kind in _COLUMNS},
        )
