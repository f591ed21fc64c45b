"""A Kafka topic of video URIs as a source: one video per message, read as shard rows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tideflow.core.uri import redact
from tideflow.media._source_shards import ShardingReader, check_shard_seconds
from tideflow.media.errors import ConfigError
from tideflow.streaming.connectors import JSON, JobContext, Source, Split, SplitReader

__all__ = ["VideoTopicSource", "parse_message"]


def parse_message(value: bytes | None) -> dict[str, Any]:
    """A message's video: a URI as text, or JSON ``{"uri": …, "video_id": …, "priority": …}``.

    Raises ValueError with what was expected.
    """
    text = (value or b"").decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"expected a video URI or a JSON object with 'uri': {error}") from None
        uri = data.get("uri")
        if not isinstance(uri, str) or not uri:
            raise ValueError("expected a JSON object with a non-empty 'uri' string")
        priority = data.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"'priority' must be an integer; got {priority!r}")
        video_id = data.get("video_id") or redact(uri)
        return {"video_id": str(video_id), "uri": uri, "priority": priority}
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"expected a video URI or a JSON object with 'uri'; got {text[:80]!r}")
    return {"video_id": redact(text), "uri": text, "priority": 0}


@dataclass(frozen=True, kw_only=True, repr=False)
class VideoTopicSource(Source):
    """Videos named by the messages of Kafka topics (one video per message).

    A message is a URI as text (``s3://bucket/a.mp4``, ``/data/b.mp4``) or JSON
    ``{"uri": …, "video_id": …, "priority": 5}``; anything else goes to the dead-letter
    output with its topic, partition and offset. Splits, resume and consumer-group commits
    are :class:`~tideflow.streaming.connectors.KafkaSource`'s (one split per partition).
    """

    topics: str | Sequence[str]
    bootstrap_servers: str | Sequence[str] = "localhost:9092"
    shard_seconds: float = 10.0
    until: Literal["now"] | None = None
    """``None``: follow the topics until stopped; ``"now"``: read what is there at the start."""
    group_id: str | None = None
    client_options: Mapping[str, Any] = field(default_factory=dict)
    allow_missing_topics: bool = False
    """``False``: a topic that does not exist when the job starts fails it. ``True``: a
    followed topic is read once it exists (a consumer started before its producer)."""

    name = "video-topic"

    def __post_init__(self) -> None:
        check_shard_seconds("VideoTopicSource", self.shard_seconds)
        if self.until not in (None, "now"):
            raise ConfigError(f'VideoTopicSource.until must be None or "now"; got {self.until!r}')
        self.kafka()  # validates topics, servers and options

    def __repr__(self) -> str:
        return f"VideoTopicSource({self.kafka()!r})"

    def kafka(self) -> Any:
        """The underlying :class:`~tideflow.streaming.connectors.KafkaSource` (raw bytes)."""
        from tideflow.streaming.connectors import KafkaSource

        return KafkaSource(
            topics=self.topics,
            bootstrap_servers=self.bootstrap_servers,
            until=self.until,
            group_id=self.group_id,
            value_format="bytes",
            client_options=dict(self.client_options),
            allow_missing_topics=self.allow_missing_topics,
        )

    @property
    def bounded(self) -> bool:
        return self.until is not None

    def discover(self, ctx: JobContext) -> Sequence[Split]:
        return list(self.kafka().discover(ctx))

    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> SplitReader:
        inner = state.get("inner") if isinstance(state, dict) else None
        return _TopicReader(self, self.kafka().open(split, inner, ctx), state)

    def commit_positions(self, ctx: JobContext, positions: Mapping[str, JSON]) -> None:
        inner = {k: v.get("inner") for k, v in positions.items() if isinstance(v, dict)}
        self.kafka().commit_positions(ctx, {k: v for k, v in inner.items() if v is not None})


class _TopicReader(ShardingReader):
    def __init__(self, source: VideoTopicSource, inner: SplitReader, state: JSON | None) -> None:
        super().__init__(source.shard_seconds, state)
        self._inner = inner
        self._inner_state = state.get("inner") if isinstance(state, dict) else None

    def _take(self) -> dict[str, Any] | None:
        while True:
            table = self._inner.read(1)
            self._dead.extend(self._inner.dead_letters())
            if table is None or table.num_rows == 0:
                return None
            self._inner_state = self._inner.snapshot()
            row = table.to_pylist()[0]
            try:
                return parse_message(row.get("value"))
            except ValueError as error:
                value = row.get("value") or b""
                self._dead.append(
                    {
                        "error": f"message: {error}",
                        "record": {
                            "topic": row.get("topic"),
                            "partition": row.get("partition"),
                            "offset": row.get("offset"),
                            "value": value.decode("utf-8", errors="replace")[:1000],
                            "stage": "message",
                        },
                    }
                )

    def _position(self) -> JSON:
        return self._inner_state

    def _inner_finished(self) -> bool:
        return bool(self._inner.finished)

    def close(self) -> None:
        self._inner.close()
