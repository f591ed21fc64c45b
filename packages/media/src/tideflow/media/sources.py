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
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from pyarrow import fs as pafs

from tideflow.core.clock import Clock, MonotonicClock
from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.media.errors import ConfigError, VideoError
from tideflow.media.video import probe, shard_plan
from tideflow.streaming.connectors import JSON, JobContext, Source, Split, SplitReader

__all__ = [
    "SOURCE_HELP",
    "video_source",
    "SHARD_SCHEMA",
    "VIDEO_EXTENSIONS",
    "VideoFolderSource",
    "VideoTopicSource",
    "parse_message",
]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".flv", ".mpg")
"""File name endings a folder source takes as videos by default."""

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

_LISTING = "videos.json"
_OLD_LISTINGS = ("ocr-videos.json",)  # written by the OCR app before this library existed
_FOLLOW_SPLIT = "videos-follow"


def _log() -> Any:
    return get_logger("tideflow.media.source")


def _check_shard_seconds(owner: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{owner}.shard_seconds must be a number > 0; got {value!r}")


class _ShardingReader(SplitReader):
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
            _log().warning("video.probe_failed", video_id=video["video_id"], error=str(error))
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


# -- a folder (or bucket) of videos ---------------------------------------------------------


def _split_uri(uri: str) -> tuple[str, str, str]:
    """``(prefix, path, query)`` of a URI: ``s3://KEY:SECRET@`` + ``bucket/dir`` + ``?…``."""
    if "://" not in uri:
        return "", os.path.abspath(uri), ""
    base, _, query = uri.partition("?")
    scheme, _, rest = base.partition("://")
    userinfo = ""
    if "@" in rest.split("/", 1)[0]:
        userinfo, _, rest = rest.partition("@")
        userinfo += "@"
    if scheme == "file":
        return "", "/" + rest.lstrip("/"), ""
    return f"{scheme}://{userinfo}", rest.rstrip("/"), f"?{query}" if query else ""


@dataclass(frozen=True, kw_only=True, repr=False)
class VideoFolderSource(Source):
    """The video files under a directory on any ``pyarrow.fs`` filesystem.

    ``VideoFolderSource(uri="s3://KEY:SECRET@bucket/videos?endpoint_override=…",
    shard_seconds=10)``. Files are listed recursively and sorted; hidden ones (a part
    starting with ``.`` or ``_``) and other extensions than ``extensions`` are left out.

    Bounded (the default): the listing is pinned in the job's directory (``videos.json``)
    at the first run, so a rerun reads the same videos even if the folder changed.

    ``follow=True``: unbounded; the folder is listed every ``poll_s`` and each video is
    taken once, in name order per listing, when its size (and modification time) has not
    changed since the listing before, so a file still being written is not taken
    half-written. The files taken are part of the resume state.
    """

    uri: str
    """A directory (or a single video) as a local path, ``file://``, ``s3://``, ``hdfs://``."""
    shard_seconds: float = 10.0
    """Length of a shard."""
    priority: Mapping[str, int] = field(default_factory=dict)
    """Glob of a video's path relative to ``uri`` → priority (first match wins; else 0)."""
    videos_per_split: int = 64
    """Bounded: videos per split (a split's videos are read in order; splits are read in
    parallel). A followed folder is one split."""
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    """File name endings taken as videos (case-insensitive)."""
    follow: bool = False
    """Watch the folder for new videos until the job is stopped (an unbounded source)."""
    poll_s: float = 1.0
    """``follow``: seconds between two listings of the folder; a file is taken once its
    size has been the same for one poll."""
    clock: Clock = field(default_factory=MonotonicClock, compare=False)
    """``follow``: what times the polls (tests pass a ``FakeClock``)."""

    name = "videos"

    def __post_init__(self) -> None:
        if not isinstance(self.uri, str) or not self.uri:
            raise ConfigError(f"VideoFolderSource.uri must be a non-empty string; got {self.uri!r}")
        _check_shard_seconds("VideoFolderSource", self.shard_seconds)
        n = self.videos_per_split
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"VideoFolderSource.videos_per_split must be an int >= 1; got {n!r}")
        if not isinstance(self.follow, bool):
            raise ConfigError(f"VideoFolderSource.follow must be a bool; got {self.follow!r}")
        poll = self.poll_s
        if (
            isinstance(poll, bool)
            or not isinstance(poll, int | float)
            or not poll > 0
            or not math.isfinite(poll)
        ):
            raise ConfigError(f"VideoFolderSource.poll_s must be a number > 0; got {poll!r}")
        if not isinstance(self.clock, Clock):
            raise ConfigError(
                f"VideoFolderSource.clock must have a now() method (a Clock); got {self.clock!r}"
            )

    def __repr__(self) -> str:
        follow = ", follow=True" if self.follow else ""
        return f"VideoFolderSource({redact(self.uri)!r}{follow})"

    @property
    def bounded(self) -> bool:
        return not self.follow

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        prefix, path, query = _split_uri(self.uri)
        problem = None
        try:
            filesystem, inner = pafs.FileSystem.from_uri(
                f"{prefix}{path}{query}" if prefix else path
            )
        except (ValueError, OSError, TypeError) as error:
            problem = redact(str(error))
        else:
            return filesystem, inner.rstrip("/") or "/"
        raise ConfigError(f"{self!r}: cannot open: {problem}")

    def _scan(self) -> dict[str, tuple[int, int]]:
        """The videos: relative path (a single file: its name) → (size, mtime in ns)."""
        filesystem, root = self._filesystem()
        info = filesystem.get_file_info(root)
        if info.type == pafs.FileType.File:
            return {posixpath.basename(root): (info.size or 0, info.mtime_ns or 0)}
        if info.type != pafs.FileType.Directory:
            raise ConfigError(f"{self!r}: expected a directory of videos or a video; found nothing")
        endings = tuple(e.lower() for e in self.extensions)
        found = {}
        for entry in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
            if entry.type != pafs.FileType.File:
                continue
            relative = entry.path[len(root.rstrip("/")) + 1 :]
            if any(part.startswith((".", "_")) for part in relative.split("/")):
                continue
            if relative.lower().endswith(endings):
                found[relative] = (entry.size or 0, entry.mtime_ns or 0)
        return found

    def list_videos(self) -> list[str]:
        """The videos' paths relative to ``uri`` (a single file: its name), sorted."""
        return sorted(self._scan())

    def _video_uri(self, relative: str) -> str:
        prefix, path, query = _split_uri(self.uri)
        filesystem, root = self._filesystem()
        if filesystem.get_file_info(root).type == pafs.FileType.File:
            return self.uri
        return f"{prefix}{path.rstrip('/')}/{relative}{query}"

    def priority_of(self, relative: str) -> int:
        """The priority of a video (its path relative to ``uri``)."""
        for pattern, value in self.priority.items():
            if fnmatch.fnmatch(relative, pattern):
                return value
        return 0

    def _video(self, relative: str) -> dict[str, Any]:
        return {
            "video_id": relative,
            "uri": self._video_uri(relative),
            "priority": self.priority_of(relative),
        }

    def _pinned_listing(self, ctx: JobContext) -> list[str]:
        if not ctx.job_uri:
            return self.list_videos()
        filesystem, job_dir = pafs.FileSystem.from_uri(ctx.job_uri)
        for name in (_LISTING, *_OLD_LISTINGS):
            pinned = f"{job_dir}/{name}"
            if filesystem.get_file_info(pinned).type == pafs.FileType.File:
                with filesystem.open_input_stream(pinned) as stream:
                    return list(json.loads(stream.read().decode())["videos"])
        videos = self.list_videos()
        path = f"{job_dir}/{_LISTING}"
        filesystem.create_dir(job_dir, recursive=True)
        with filesystem.open_output_stream(f"{path}.tmp") as out:
            out.write(json.dumps({"videos": videos}).encode())
        filesystem.move(f"{path}.tmp", path)
        return videos

    def discover(self, ctx: JobContext) -> Sequence[Split]:
        if self.follow:
            return [Split(split_id=_FOLLOW_SPLIT, info={"follow": True})]
        videos = self._pinned_listing(ctx)
        n = self.videos_per_split
        splits = [
            Split(split_id=f"videos-{i:05d}", info={"videos": videos[s : s + n]})
            for i, s in enumerate(range(0, len(videos), n))
        ]
        _log().info("source.discovered", source=repr(self), videos=len(videos), splits=len(splits))
        return splits

    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> SplitReader:
        if split.split_id == _FOLLOW_SPLIT:
            return _FollowReader(self, state)
        videos = list(split.info["videos"]) if isinstance(split.info, dict) else []
        return _FolderReader(self, videos, state)


class _FolderReader(_ShardingReader):
    """A slice of the pinned listing, in order; resumes at the index after the last taken."""

    def __init__(self, source: VideoFolderSource, videos: list[str], state: JSON | None) -> None:
        super().__init__(source.shard_seconds, state)
        self._source = source
        self._videos = videos
        inner = state.get("inner") if isinstance(state, dict) else None
        self._next = int(inner["next"]) if isinstance(inner, dict) else 0

    def _take(self) -> dict[str, Any] | None:
        if self._next >= len(self._videos):
            return None
        relative = self._videos[self._next]
        self._next += 1
        return self._source._video(relative)

    def _position(self) -> JSON:
        return {"next": self._next}

    def _inner_finished(self) -> bool:
        return self._next >= len(self._videos)


class _FollowReader(_ShardingReader):
    """A followed folder: every ``poll_s``, the files not taken yet whose size and mtime
    match the listing before become ready; they are taken in name order. The files taken
    are the resume state (a file's size seen before a crash is not: a rerun watches every
    file for one more poll)."""

    def __init__(self, source: VideoFolderSource, state: JSON | None) -> None:
        super().__init__(source.shard_seconds, state)
        self._source = source
        inner = state.get("inner") if isinstance(state, dict) else None
        taken = inner.get("taken") if isinstance(inner, dict) else None
        self._taken: set[str] = set(taken or [])
        self._seen: dict[str, tuple[int, int]] = {}
        self._ready: list[str] = []
        self._polled_at: float | None = None

    def _take(self) -> dict[str, Any] | None:
        if not self._ready:
            now = self._source.clock.now()
            if self._polled_at is not None and now - self._polled_at < self._source.poll_s:
                return None
            self._polled_at = now
            self._ready = self._poll()
        if not self._ready:
            return None
        relative = self._ready.pop(0)
        self._taken.add(relative)
        return self._source._video(relative)

    def _poll(self) -> list[str]:
        try:
            listing = self._source._scan()
        except (ConfigError, OSError) as error:  # gone for now, a flaky store: look again
            _log().warning("source.listing_failed", source=repr(self._source), error=str(error))
            return []
        fresh = {r: stat for r, stat in listing.items() if r not in self._taken}
        ready = sorted(r for r, stat in fresh.items() if stat[0] > 0 and self._seen.get(r) == stat)
        self._seen = fresh
        if ready:
            _log().info("source.videos_ready", source=repr(self._source), videos=len(ready))
        return ready

    def _position(self) -> JSON:
        return {"taken": sorted(self._taken)}

    def _inner_finished(self) -> bool:
        return False


# -- a Kafka topic of video URIs ------------------------------------------------------------


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
        _check_shard_seconds("VideoTopicSource", self.shard_seconds)
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


class _TopicReader(_ShardingReader):
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


# -- a source from its text (what the apps' command lines take) ------------------------------

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
