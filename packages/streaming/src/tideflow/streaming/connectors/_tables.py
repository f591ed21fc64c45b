"""What the table connectors (Iceberg and Lance) share: epoch staging, pinned choices, and a
reader over an ordered list of parts (data files, fragments) that resumes by row offset.

**Epoch staging** lives in the job's directory (``JobContext.job_uri``)::

    <job_uri>/<kind>-staging/<sink key>/epoch-000042/r002-w000-00000.parquet   staged data
    <job_uri>/<kind>-staging/<sink key>/epoch-000042/r002-w000.json            manifest

A writer's manifest is written last, by its pre-commit, so an epoch directory with a
manifest holds that writer's complete share. A commit publishes the epochs still staged
before its own (see the sinks) and then removes the directories of every epoch up to its
own; ``recover`` removes those after the restored checkpoint.

**Pinned choices**: a bounded table source reads "the latest snapshot (version) at
discovery", and an unbounded one starts "after the latest snapshot". A rerun of the same
job must make the same choice, or its resume states would point into another snapshot; the
first run writes the choice to ``<job_uri>/<kind>-source/<key>.json`` and later runs read
it back.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.core.observability import get_logger
from tideflow.core.uri import open_uri, redact
from tideflow.streaming._jobdir import join_uri
from tideflow.streaming.connectors._base import JSON, JobContext, SplitReader
from tideflow.streaming.connectors._kit import Position, describe_error, guarded
from tideflow.streaming.errors import SinkError, SourceError

__all__ = [
    "EpochStaging",
    "OpenPart",
    "PartsReader",
    "key_of",
    "pinned",
]

_EPOCH_DIR = re.compile(r"^epoch-(\d+)$")


def key_of(text: str) -> str:
    """A short, path-safe, stable name for a table identifier or URI (no secrets in it)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", redact(text).split("?")[0])[-40:].strip("_.")
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{readable}-{digest}" if readable else digest


@dataclass(frozen=True)
class EpochStaging:
    """One sink's staging area in the job directory, one sub-directory per epoch."""

    filesystem: pafs.FileSystem
    root: str
    owner: str
    """The sink's repr, for error messages."""

    @classmethod
    def open(cls, ctx: JobContext, *, kind: str, key: str, owner: str) -> EpochStaging:
        if not ctx.job_uri:
            message = (
                f"{owner}: the job has no directory (JobContext.job_uri is empty) to stage "
                "epochs in; run the sink through a Pipeline, or give the context a job_uri"
            )
            raise SinkError(message)
        filesystem, root = open_uri(join_uri(ctx.job_uri, f"{kind}-staging", key), owner=owner)
        return cls(filesystem, root, owner)

    def epoch_dir(self, epoch: int) -> str:
        return f"{self.root}/epoch-{epoch:06d}"

    def create_epoch_dir(self, epoch: int) -> str:
        path = self.epoch_dir(epoch)
        guarded(self.owner, "create a staging directory", SinkError, self._mkdir, path)
        return path

    def _mkdir(self, path: str) -> None:
        self.filesystem.create_dir(path, recursive=True)

    def write_manifest(self, epoch: int, name: str, payload: JSON) -> None:
        """Record a writer's complete share of ``epoch`` (written after its data)."""
        path = f"{self.create_epoch_dir(epoch)}/{name}.json"
        data = json.dumps(payload).encode()
        guarded(self.owner, f"write {name}.json", SinkError, self._write, path, data)

    def _write(self, path: str, data: bytes) -> None:
        with self.filesystem.open_output_stream(path) as out:
            out.write(data)

    def epochs(self) -> list[int]:
        """The staged epochs, in order."""
        selector = pafs.FileSelector(self.root, allow_not_found=True)
        infos = guarded(self.owner, "list the staging area", SinkError, self._list, selector)
        found = []
        for info in infos:
            m = _EPOCH_DIR.match(posixpath.basename(info.path))
            if info.type == pafs.FileType.Directory and m is not None:
                found.append(int(m[1]))
        return sorted(found)

    def _list(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self.filesystem.get_file_info(selector))

    def manifests(self, epoch: int, *, partial: bool = False) -> list[JSON]:
        """The pre-commit states the writers of ``epoch`` recorded (sorted by writer); with
        ``partial``, also what writers recorded before their pre-commit (``*-partial``)."""
        selector = pafs.FileSelector(self.epoch_dir(epoch), allow_not_found=True)
        infos = guarded(self.owner, f"list epoch {epoch}", SinkError, self._list, selector)
        states = []
        for info in sorted(infos, key=lambda i: i.path):
            complete = not info.path.endswith("-partial.json")
            if (
                info.type == pafs.FileType.File
                and info.path.endswith(".json")
                and (complete or partial)
            ):
                text = guarded(self.owner, f"read {info.path}", SinkError, self._read, info.path)
                states.append(json.loads(text))
        return states

    def _read(self, path: str) -> bytes:
        with self.filesystem.open_input_stream(path) as stream:
            data: bytes = stream.read()
            return data

    def backlog(
        self, ctx: JobContext, epoch: int, precommits: Sequence[JSON], log: Any
    ) -> list[tuple[int, Sequence[JSON]]]:
        """What a commit of ``epoch`` publishes, in order: the epochs still staged before it
        (their commit failed, a later checkpoint was saved; each logged) with the states
        their writers recorded, then ``epoch`` with ``precommits``."""
        earlier = [e for e in self.epochs() if e < epoch]
        for e in earlier:
            log.warning("sink.publishing_staged_epoch", job_id=ctx.job_id, epoch=e, before=epoch)
        return [*((e, self.manifests(e)) for e in earlier), (epoch, precommits)]

    def remove(self, which: Callable[[int], bool]) -> list[int]:
        """Delete the staged epochs for which ``which(epoch)``; return them."""
        removed = [e for e in self.epochs() if which(e)]
        for epoch in removed:
            path = self.epoch_dir(epoch)
            guarded(self.owner, f"remove {path}", SinkError, self.filesystem.delete_dir, path)
        return removed


def pinned(ctx: JobContext, *, kind: str, key: str, owner: str, choose: Callable[[], JSON]) -> JSON:
    """``choose()`` on a job's first discovery; the same value on every later run."""
    if not ctx.job_uri:
        return choose()
    filesystem, path = open_uri(join_uri(ctx.job_uri, f"{kind}-source", f"{key}.json"), owner=owner)
    info = guarded(owner, "look up its pinned choice", SourceError, filesystem.get_file_info, path)
    if info.type == pafs.FileType.File:
        with filesystem.open_input_stream(path) as stream:
            return json.loads(stream.read())
    value = choose()
    filesystem.create_dir(posixpath.dirname(path), recursive=True)
    with filesystem.open_output_stream(path) as out:
        out.write(json.dumps(value).encode())
    get_logger("tideflow.streaming.tables", source=owner).info(
        "source.pinned", job_id=ctx.job_id, choice=value
    )
    return value


OpenPart = Callable[[int, int], Iterator[pa.RecordBatch]]
"""``open_part(index, skip)``: the batches of part ``index`` after its first ``skip`` rows."""


class PartsReader(SplitReader):
    """Reads parts (data files, fragments) in order; a batch never mixes two parts.

    The state after a batch is ``{"part": index, "row": rows of that part returned,
    "name": the part's name}``: a resume reopens that part and skips those rows.
    """

    def __init__(
        self, owner: str, parts: Sequence[str], open_part: OpenPart, at: Position | None = None
    ) -> None:
        at = at or Position()
        self._owner = owner
        self._parts = list(parts)
        self._open_part = open_part
        self._part = at.part
        self._row = at.row
        self._batches: Iterator[pa.RecordBatch] | None = None
        self._pending: pa.RecordBatch | None = None

    @property
    def finished(self) -> bool:
        return self._part >= len(self._parts)

    def snapshot(self) -> JSON:
        name = self._parts[self._part] if self._part < len(self._parts) else None
        return {"part": self._part, "row": self._row, "name": name}

    def read(self, max_rows: int) -> pa.Table | None:
        while self._part < len(self._parts):
            batch = self._next(max_rows)
            if batch is not None:
                self._row += batch.num_rows
                return pa.Table.from_batches([batch])
            self._batches, self._pending = None, None
            self._part += 1
            self._row = 0
        return None

    def close(self) -> None:
        batches, self._batches = self._batches, None
        close = getattr(batches, "close", None)
        if close is not None:
            close()

    def _next(self, max_rows: int) -> pa.RecordBatch | None:
        """At most ``max_rows`` rows of the current part, or None at its end."""
        while self._pending is None or self._pending.num_rows == 0:
            problem = None
            try:
                if self._batches is None:
                    self._batches = self._open_part(self._part, self._row)
                self._pending = next(self._batches)
            except StopIteration:
                return None
            except SourceError:
                raise
            except Exception as e:  # any read error names the part
                problem = describe_error(e)
            if problem is not None:  # raised outside `except`: storage errors may echo secrets
                name = self._parts[self._part]
                raise SourceError(f"{self._owner}: cannot read {redact(name)!r}: {problem}")
        batch, rest = self._pending.slice(0, max_rows), self._pending.slice(max_rows)
        self._pending = rest if rest.num_rows else None
        return batch
