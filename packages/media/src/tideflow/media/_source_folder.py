"""A folder (or bucket) of videos as a source: pinned (bounded) or followed for new files."""

from __future__ import annotations

import fnmatch
import json
import math
import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyarrow import fs as pafs

from tideflow.core.clock import Clock, MonotonicClock
from tideflow.core.uri import redact
from tideflow.media._source_shards import ShardingReader, check_shard_seconds, source_log
from tideflow.media.errors import ConfigError
from tideflow.streaming.connectors import JSON, JobContext, Source, Split, SplitReader

__all__ = ["VIDEO_EXTENSIONS", "VideoFolderSource"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".flv", ".mpg")
"""File name endings a folder source takes as videos by default."""

_LISTING = "videos.json"
_OLD_LISTINGS = ("ocr-videos.json",)  # written by the OCR app before this library existed
_FOLLOW_SPLIT = "videos-follow"


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
    taken once, when its size (and modification time) has not changed since the listing
    before, so a file still being written is not taken half-written. The files taken are
    part of the resume state.

    Order: higher ``priority`` first, then by path. Bounded, the pinned listing is in that
    order, spread over the splits so that each split reads its highest-priority videos
    first; followed, a video that becomes ready overtakes the ready ones of lower priority
    not taken yet. (Shards already read carry their priority into the pipeline, where
    the engine's priority queues let them overtake queued work.)
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
        check_shard_seconds("VideoFolderSource", self.shard_seconds)
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

    def _order(self, videos: Iterable[str]) -> list[str]:
        """``videos`` by priority (highest first), then path."""
        return sorted(videos, key=lambda relative: (-self.priority_of(relative), relative))

    def _pinned_order(self, videos: Sequence[str]) -> list[str]:
        """The pinned listing's order: by path when no video has a priority; else by
        :meth:`_order`, dealt round the splits (the i-th video to split ``i mod splits``)
        and laid out split after split, so that each split's slice starts with its
        highest-priority videos."""
        if not any(self.priority_of(relative) for relative in videos):
            return sorted(videos)
        ordered = self._order(videos)
        splits = max(1, math.ceil(len(ordered) / self.videos_per_split))
        return [video for first in range(splits) for video in ordered[first::splits]]

    def _video(self, relative: str) -> dict[str, Any]:
        return {
            "video_id": relative,
            "uri": self._video_uri(relative),
            "priority": self.priority_of(relative),
        }

    def _pinned_listing(self, ctx: JobContext) -> list[str]:
        if not ctx.job_uri:
            return self._pinned_order(self.list_videos())
        filesystem, job_dir = pafs.FileSystem.from_uri(ctx.job_uri)
        for name in (_LISTING, *_OLD_LISTINGS):
            pinned = f"{job_dir}/{name}"
            if filesystem.get_file_info(pinned).type == pafs.FileType.File:
                with filesystem.open_input_stream(pinned) as stream:
                    return list(json.loads(stream.read().decode())["videos"])
        videos = self._pinned_order(self.list_videos())
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
        source_log().info(
            "source.discovered", source=repr(self), videos=len(videos), splits=len(splits)
        )
        return splits

    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> SplitReader:
        if split.split_id == _FOLLOW_SPLIT:
            return _FollowReader(self, state)
        videos = list(split.info["videos"]) if isinstance(split.info, dict) else []
        return _FolderReader(self, videos, state)


class _FolderReader(ShardingReader):
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


class _FollowReader(ShardingReader):
    """A followed folder: every ``poll_s``, the files not taken yet whose size and mtime
    match the listing before become ready; they are taken by priority, then name (one
    that becomes ready overtakes ready ones of lower priority). The files taken are the
    resume state (a file's size seen before a crash is not: a rerun watches every file
    for one more poll)."""

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
        now = self._source.clock.now()
        if self._polled_at is None or now - self._polled_at >= self._source.poll_s:
            self._polled_at = now
            ready = self._poll()
            if ready:
                self._ready = self._source._order({*self._ready, *ready})
        if not self._ready:
            return None
        relative = self._ready.pop(0)
        self._taken.add(relative)
        return self._source._video(relative)

    def _poll(self) -> list[str]:
        try:
            listing = self._source._scan()
        except (ConfigError, OSError) as error:  # gone for now, a flaky store: look again
            source_log().warning(
                "source.listing_failed", source=repr(self._source), error=str(error)
            )
            return []
        fresh = {r: stat for r, stat in listing.items() if r not in self._taken}
        ready = sorted(r for r, stat in fresh.items() if stat[0] > 0 and self._seen.get(r) == stat)
        self._seen = fresh
        new = [r for r in ready if r not in self._ready]
        if new:
            source_log().info("source.videos_ready", source=repr(self._source), videos=len(new))
        return ready

    def _position(self) -> JSON:
        return {"taken": sorted(self._taken)}

    def _inner_finished(self) -> bool:
        return False
