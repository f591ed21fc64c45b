"""Where videos come from: a folder or bucket of video files, or a Kafka topic of video URIs.

>>> source = VideoFolderSource(uri="s3://KEY:SECRET@bucket/videos", shard_seconds=10)
>>> live = VideoFolderSource(uri="/data/incoming", follow=True, poll_s=2.0)

Both sources *probe and shard* as they read: each video is opened once (PyAV) for its
duration and size, cut into shards of ``shard_seconds``, and every shard leaves the source
as its own row (:data:`SHARD_SCHEMA`). Read with ``batch_size=1``, each shard is its own
batch, so a pool of decode or OCR actors works on the shards of one video in parallel.

A split's resume state is where its input resumes after the last video taken (the index in
a pinned listing, the files a followed folder gave, a Kafka offset) plus the shards of that
video not yet returned, so a rerun after a crash neither skips nor repeats a video or a
shard. A video that cannot be probed goes to the job's dead-letter output (stage ``probe``)
with the reason; the others go on.

The sources live in their own modules (a folder: ``_source_folder``, a topic:
``_source_topic``, the shard rows both emit: ``_source_shards``); this module is where
they are imported from, and it turns a command line's text into one (:func:`video_source`).
"""

from __future__ import annotations

from collections.abc import Mapping

from tideflow.core.uri import redact
from tideflow.media._source_folder import VIDEO_EXTENSIONS, VideoFolderSource
from tideflow.media._source_shards import SHARD_SCHEMA
from tideflow.media._source_topic import VideoTopicSource, parse_message
from tideflow.media.errors import ConfigError
from tideflow.streaming.connectors import Source

__all__ = [
    "SOURCE_HELP",
    "video_source",
    "SHARD_SCHEMA",
    "VIDEO_EXTENSIONS",
    "VideoFolderSource",
    "VideoTopicSource",
    "parse_message",
]

SOURCE_HELP = (
    "expected a folder of videos or a video file (a local path, file://, s3://, hdfs://) "
    "or a Kafka topic as kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]"
)


def video_source(
    text: str | Source,
    *,
    shard_seconds: float = 10.0,
    priority: Mapping[str, int] | None = None,
    follow: bool = False,
    poll_s: float = 1.0,
) -> Source:
    """A source from its text: a folder or video file (local, ``file://``, ``s3://``,
    ``hdfs://``) or ``kafka://host:port/topic[,topic]``. ``follow``: read until stopped (new
    messages of a topic, new videos of a folder, listed every ``poll_s``); a source given
    as a :class:`Source` is returned as it is. Raises :class:`ConfigError` naming the text."""
    import os
    import urllib.parse

    if isinstance(text, Source):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"video source {text!r}: {SOURCE_HELP}")
    if text.startswith("kafka://"):
        parsed = urllib.parse.urlsplit(text)
        topics = [t for t in parsed.path.strip("/").split(",") if t]
        if not parsed.netloc or not topics:
            raise ConfigError(f"video source {redact(text)!r}: {SOURCE_HELP}")
        return VideoTopicSource(
            topics=topics,
            bootstrap_servers=parsed.netloc,
            shard_seconds=shard_seconds,
            until=None if follow else "now",
            allow_missing_topics=follow,  # a followed topic may be created after the start
        )
    if "://" not in text or text.startswith("file://"):
        path = text.removeprefix("file://")
        if not os.path.exists(path):
            raise ConfigError(f"video source {text!r} does not exist: {SOURCE_HELP}")
    return VideoFolderSource(
        uri=text,
        shard_seconds=shard_seconds,
        priority=dict(priority or {}),
        follow=follow,
        poll_s=poll_s,
    )
