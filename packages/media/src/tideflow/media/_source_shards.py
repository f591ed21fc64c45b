"""What both video sources share: the shard rows they emit and the reader that makes them.

A :class:`ShardingReader` takes videos one at a time from its input (a listing, a followed
folder, a Kafka partition), probes each once and returns its shards as rows of
:data:`SHARD_SCHEMA`. Its resume state is the input's position after the last video taken
plus the shards of that video not returned yet; a video that cannot be probed becomes a
dead letter (stage ``probe``).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.media.errors import ConfigError, VideoError
from tideflow.media.video import probe, shard_plan
from tideflow.streaming.connectors import JSON, SplitReader

__all__ = ["SHARD_SCHEMA", "ShardingReader", "check_shard_seconds", "source_log"]

SHARD_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("priority", pa.int64()),
        ("shard", pa.int32()),
        ("shards", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)
"""Rows of the video sources: one shard ``[start_s, end_s)`` of one video each."""


def source_log() -> Any:
    """The video sources' logger."""
    return get_logger("tideflow.media.source")


def check_shard_seconds(owner: str, value: object) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a number > 0 (``owner`` names the field)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{owner}.shard_seconds must be a number > 0; got {value!r}")


class ShardingReader(SplitReader):
    """Takes videos one at a time from ``_take()``, probes them and returns their shards."""

    def __init__(self, shard_seconds: float, state: JSON | None) -> None:
        self._shard_seconds = shard_seconds
        state = state if isinstance(state, dict) else {}
        self._current: dict[str, Any] | None = state.get("current")
        self._dead: list[dict[str, JSON]] = []

    # -- what a concrete reader provides -----------------------------------------------
    def _take(self) -> dict[str, Any] | None:
        """The next video ``{video_id, uri, priority}``, or None (none now, or the end)."""
        raise NotImplementedError

    def _position(self) -> JSON:
        """Where the inner input resumes after the last video taken."""
        raise NotImplementedError

    def _inner_finished(self) -> bool:
        raise NotImplementedError

    # -- SplitReader -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._current is None and self._inner_finished()

    def snapshot(self) -> JSON:
        return {"inner": self._position(), "current": self._current}

    def dead_letters(self) -> list[dict[str, JSON]]:
        taken, self._dead = self._dead, []
        return taken

    def read(self, max_rows: int) -> pa.Table | None:
        rows: list[dict[str, Any]] = []
        while len(rows) < max_rows:
            if self._current is None:
                video = self._take()
                if video is None:
                    break
                self._current = self._probe(video)
                continue
            current = self._current
            plan = shard_plan(current["duration_s"], self._shard_seconds)
            index = current["next"]
            start, end = plan[index]
            rows.append(
                {
                    "video_id": current["video_id"],
                    "uri": current["uri"],
                    "priority": current["priority"],
                    "shard": index,
                    "shards": len(plan),
                    "start_s": start,
                    "end_s": end,
                    "duration_s": current["duration_s"],
                    "width": current["width"],
                    "height": current["height"],
                }
            )
            current["next"] = index + 1
            if current["next"] >= len(plan):
                self._current = None
        return pa.Table.from_pylist(rows, schema=SHARD_SCHEMA) if rows else None

    def _probe(self, video: dict[str, Any]) -> dict[str, Any] | None:
        try:
            info = probe(video["uri"])
        except VideoError as error:
            source_log().warning("video.probe_failed", video_id=video["video_id"], error=str(error))
            self._dead.append(
                {
                    "error": f"probe: {error}",
                    "record": {
                        "video_id": video["video_id"],
                        "uri": redact(video["uri"]),
                        "stage": "probe",
                    },
                }
            )
            return None
        return {
            **video,
            "duration_s": info.duration_s,
            "width": info.width,
            "height": info.height,
            "next": 0,
        }
