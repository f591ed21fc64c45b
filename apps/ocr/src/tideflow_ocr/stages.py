"""The pipeline's stage functions: decode, OCR, gather per video, filter (layers 1 and 2).

Each stage gets Arrow tables and returns Arrow tables; errors of a shard travel as data
(an ``error`` column) so that the per-video gather always hears of every shard, and a video
whose shard failed after all retries leaves the pipeline as one ``failed`` result.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.media.sources import SHARD_SCHEMA
from tideflow.media.video import sample_frames
from tideflow_ocr.config import OcrConfig
from tideflow_ocr.filters import layer1, layer2

__all__ = [
    "ocr_engine",
    "FRAME_TYPE",
    "LINE_TYPE",
    "OUTCOME_TYPE",
    "RESULT_SCHEMA",
    "SEGMENT_TYPE",
    "SHARD_SCHEMA",
    "DecodeShards",
    "FilterVideos",
    "OcrShards",
    "gather_shards",
]

FRAME_TYPE = pa.struct([("t", pa.float64()), ("t0", pa.float64()), ("t1", pa.float64())])
LINE_TYPE = pa.struct(
    [
        ("t", pa.float64()),
        ("text", pa.string()),
        ("score", pa.float64()),
        ("x0", pa.float64()),
        ("y0", pa.float64()),
        ("x1", pa.float64()),
        ("y1", pa.float64()),
    ]
)
SEGMENT_TYPE = pa.struct(
    [
        ("text", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("score", pa.float64()),
        ("frames", pa.int32()),
        ("top", pa.float64()),
    ]
)
OUTCOME_TYPE = pa.struct(
    [
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("status", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("segments", pa.int32()),
    ]
)
RESULT_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("priority", pa.int64()),
        ("duration_s", pa.float64()),
        ("shards", pa.int32()),
        ("frames", pa.int32()),
        ("lines_read", pa.int32()),
        ("lines_kept", pa.int32()),
        ("segments", pa.list_(SEGMENT_TYPE)),
        ("text", pa.string()),
        ("completed_at", pa.timestamp("us", tz="UTC")),
        ("outcome", OUTCOME_TYPE),
    ]
)
"""Rows leaving the filter stage: one per video (``outcome`` feeds the callbacks and is
not written to the outputs)."""

_SHARD_FIELDS = [f.name for f in SHARD_SCHEMA]


def _retrying(what: str, retries: int, fn: Any, log: Any, **fields: Any) -> tuple[Any, str | None]:
    """``fn()`` with up to ``retries`` retries; ``(result, None)`` or ``(None, error)``."""
    error = None
    for attempt in range(retries + 1):
        try:
            return fn(), None
        except Exception as e:
            error = f"{type(e).__name__}: {redact(str(e))}"
            log.warning(f"{what}.retry", attempt=attempt + 1, error=error[:300], **fields)
            if attempt < retries:
                time.sleep(min(0.05 * 2**attempt, 1.0))
    return None, error


class DecodeShards:
    """Decode: the sampled frames of each shard (PyAV), as raw RGB bytes."""

    def __init__(self, config: OcrConfig) -> None:
        self._config = config
        self._log = get_logger("tideflow_ocr.decode")

    def __call__(self, table: pa.Table) -> pa.Table:
        config = self._config
        rows = []
        for row in table.select(_SHARD_FIELDS).to_pylist():
            frames, error = _retrying(
                "decode",
                config.retries,
                lambda row=row: sample_frames(
                    row["uri"],
                    row["start_s"],
                    row["end_s"],
                    duration_s=row["duration_s"],
                    fps=config.fps,
                    keyframes=config.keyframes,
                    max_side=config.max_side,
                ),
                self._log,
                video_id=row["video_id"],
                shard=row["shard"],
            )
            frames = frames or []
            rows.append(
                {
                    **row,
                    "frames": [{"t": f.t, "t0": f.t0, "t1": f.t1} for f in frames],
                    "pixels": [np.ascontiguousarray(f.image).tobytes() for f in frames],
                    "frame_h": frames[0].image.shape[0] if frames else 0,
                    "frame_w": frames[0].image.shape[1] if frames else 0,
                    "error": f"decode: {error}" if error else None,
                }
            )
        schema = SHARD_SCHEMA.append(pa.field("frames", pa.list_(FRAME_TYPE)))
        for name, kind in (
            ("pixels", pa.list_(pa.binary())),
            ("frame_h", pa.int32()),
            ("frame_w", pa.int32()),
            ("error", pa.string()),
        ):
            schema = schema.append(pa.field(name, kind))
        return pa.Table.from_pylist(rows, schema=schema)


def ocr_engine(threads: int = 1) -> Any:
    """rapidocr with the settings tuned for video frames (shared/NOTES.md): no angle
    classifier, a detector that never upscales (``limit_type="max"``, 736 px), ``threads``
    onnxruntime threads."""
    from rapidocr import RapidOCR

    return RapidOCR(
        params={
            "Global.use_cls": False,
            "Global.log_level": "critical",
            "Det.limit_type": "max",
            "Det.limit_side_len": 736,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )


class OcrShards:
    """OCR: every sampled frame of a shard through rapidocr (PP-OCRv6, onnxruntime).

    Tuned for video frames (shared/NOTES.md): no angle classifier, the detector never
    upscales (``limit_type="max"``, 736 px), one onnxruntime thread per actor.
    """

    def __init__(self, config: OcrConfig) -> None:
        self._config = config
        self._log = get_logger("tideflow_ocr.ocr", pid=os.getpid())
        self._engine = ocr_engine(config.ocr_threads)
        self._engine(np.zeros((64, 256, 3), np.uint8))  # load the models now, not on a shard

    def read_frame(self, image: np.ndarray) -> list[dict[str, Any]]:
        """The lines of one RGB frame, boxes in fractions of the frame."""
        height, width = image.shape[:2]
        result: Any = self._engine(np.ascontiguousarray(image[:, :, ::-1]))  # it expects BGR
        if result.boxes is None or result.txts is None:
            return []
        lines = []
        for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            xs, ys = box[:, 0], box[:, 1]
            lines.append(
                {
                    "text": str(text),
                    "score": float(score),
                    "x0": float(xs.min()) / width,
                    "y0": float(ys.min()) / height,
                    "x1": float(xs.max()) / width,
                    "y1": float(ys.max()) / height,
                }
            )
        return lines

    def _shard(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        h, w = row["frame_h"], row["frame_w"]
        lines = []
        for frame, pixels in zip(row["frames"], row["pixels"], strict=True):
            image = np.frombuffer(pixels, np.uint8).reshape(h, w, 3)
            lines += [{"t": frame["t"], **line} for line in self.read_frame(image)]
        return lines

    def __call__(self, table: pa.Table) -> pa.Table:
        rows = []
        for row in table.to_pylist():
            lines: list[dict[str, Any]] = []
            error = row["error"]
            if error is None:
                found, problem = _retrying(
                    "ocr",
                    self._config.retries,
                    lambda row=row: self._shard(row),
                    self._log,
                    video_id=row["video_id"],
                    shard=row["shard"],
                )
                lines, error = found or [], f"ocr: {problem}" if problem else None
            out = {k: row[k] for k in _SHARD_FIELDS}
            rows.append({**out, "frames": row["frames"], "lines": lines, "error": error})
        schema = SHARD_SCHEMA.append(pa.field("frames", pa.list_(FRAME_TYPE)))
        schema = schema.append(pa.field("lines", pa.list_(LINE_TYPE)))
        schema = schema.append(pa.field("error", pa.string()))
        return pa.Table.from_pylist(rows, schema=schema)


def gather_shards(
    state: dict[str, Any] | None, row: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Keyed by ``video_id``: keep each shard's frames and lines until every shard of the
    video is in, then emit the video (and forget it). A shard seen twice counts once."""
    if state is None:
        state = {"parts": {}}
    state["parts"][int(row["shard"])] = {
        "frames": row["frames"],
        "lines": row["lines"],
        "error": row["error"],
    }
    shards = int(row["shards"])
    if len(state["parts"]) < shards:
        return state, None
    parts = [state["parts"][i] for i in sorted(state["parts"])]
    errors = [f"shard {i}: {p['error']}" for i, p in sorted(state["parts"].items()) if p["error"]]
    video = {
        "video_id": row["video_id"],
        "uri": row["uri"],
        "priority": row["priority"],
        "duration_s": row["duration_s"],
        "shards": shards,
        "frames": [f for p in parts for f in p["frames"]],
        "lines": [{**line, **_span(line["t"], p["frames"])} for p in parts for line in p["lines"]],
        "errors": errors,
    }
    return None, video


def _span(t: float, frames: list[dict[str, Any]]) -> dict[str, float]:
    for f in frames:
        if f["t"] == t:
            return {"t0": f["t0"], "t1": f["t1"]}
    return {"t0": t, "t1": t}


class FilterVideos:
    """Layer 1 (confidence, box size, region) and layer 2 (timed segments, no duplicates)
    on each gathered video; a video with a failed shard becomes a ``failed`` result."""

    def __init__(self, config: OcrConfig) -> None:
        self._config = config

    def __call__(self, table: pa.Table) -> pa.Table:
        rows = []
        now = datetime.now(UTC)
        for video in table.to_pylist():
            errors = video.get("errors") or []
            lines = video.get("lines") or []
            frames = video.get("frames") or []
            uri = redact(video["uri"])
            if errors:
                stage = errors[0].split(": ", 2)[1] if ": " in errors[0] else "ocr"
                error = "; ".join(errors)
                segments: list[dict[str, Any]] = []
                kept: list[dict[str, Any]] = []
                status = "failed"
            else:
                kept = layer1(lines, self._config)
                segments = [s.as_row() for s in layer2(frames, kept, self._config)]
                stage, error, status = "", None, "ok"
            rows.append(
                {
                    "video_id": video["video_id"],
                    "uri": uri,
                    "status": status,
                    "error": error,
                    "priority": video["priority"],
                    "duration_s": video["duration_s"],
                    "shards": video["shards"],
                    "frames": len(frames),
                    "lines_read": len(lines),
                    "lines_kept": len(kept),
                    "segments": segments,
                    "text": "\n".join(s["text"] for s in segments),
                    "completed_at": now,
                    "outcome": {
                        "video_id": video["video_id"],
                        "uri": uri,
                        "status": status,
                        "stage": stage or None,
                        "error": error,
                        "segments": len(segments),
                    },
                }
            )
        return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
