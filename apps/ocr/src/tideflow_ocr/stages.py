"""The pipeline's stage functions: OCR with the app's settings, gather per video, filter
(layers 1 and 2). Decoding and OCR are :mod:`tideflow.media`'s ``DecodeFrames`` and
``OcrFrames``.

Each stage gets Arrow tables and returns Arrow tables; errors of a shard travel as data
(an ``error`` column) so that the per-video gather always hears of every shard, and a video
whose shard failed after all retries leaves the pipeline as one ``failed`` result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from tideflow.core.uri import redact
from tideflow.media.ocr import OcrFrames
from tideflow_ocr.config import OcrConfig
from tideflow_ocr.filters import layer1, layer2

__all__ = [
    "OUTCOME_TYPE",
    "RESULT_SCHEMA",
    "SEGMENT_TYPE",
    "FilterVideos",
    "OcrShards",
    "gather_shards",
]

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


class OcrShards(OcrFrames):
    """:class:`~tideflow.media.OcrFrames` with the app's threads and retries, the frames'
    pixels left behind: the per-video gather keeps frame times and lines only."""

    def __init__(self, config: OcrConfig) -> None:
        super().__init__(threads=config.ocr_threads, retries=config.retries, keep_pixels=False)


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
