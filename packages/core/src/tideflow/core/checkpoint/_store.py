"""A checkpoint store over ``pyarrow.fs``: state objects first, the manifest last."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.core.checkpoint._ids import (
    Checkpoint,
    CheckpointId,
    CheckpointInfo,
    ObjectInfo,
    ObjectKind,
)
from tideflow.core.errors import (
    CheckpointError,
    CheckpointLocationError,
    CheckpointNotFoundError,
    ConfigError,
)
from tideflow.core.observability import get_logger
from tideflow.core.uri import redact

__all__ = ["MANIFEST_NAME", "CheckpointStore"]

MANIFEST_NAME = "_MANIFEST.json"
"""The file whose presence makes a checkpoint directory a complete checkpoint."""
_FORMAT = "tideflow.checkpoint/1"
_EXT: dict[str, str] = {
    "bytes": ".bin",
    "json": ".json",
    "arrow_table": ".arrow",
    "arrow_batch": ".arrow",
}
_ATOMIC_PUT_FILESYSTEMS = ("s3", "gcs")


class CheckpointStore:
    """Checkpoints in a directory of any filesystem ``pyarrow.fs`` understands.

    ``uri`` is a local path, ``file://``, ``s3://``, ``hdfs://``, ``gs://`` … opened with
    ``pyarrow.fs.FileSystem.from_uri``; credentials may sit in the URI
    (``s3://KEY:SECRET@bucket/prefix?endpoint_override=host:port``) and are masked in every
    log line, repr and error. With ``filesystem`` given, ``uri`` is a path inside it. When
    the location cannot be listed, read or written (an unreachable endpoint, a full or
    read-only disk) every method raises :class:`CheckpointLocationError`, naming it.

    Each checkpoint is a directory ``chk-<20 digits>`` holding one file per state object and
    a manifest (:data:`MANIFEST_NAME`) listing them with sizes and SHA-256 sums. Objects are
    written in parallel, the manifest last (on object stores a single PUT, elsewhere a
    temporary file renamed into place), so a checkpoint without a manifest does not exist:
    a save that fails or is killed leaves :meth:`latest` where it was. After each save only
    the last ``retain`` complete checkpoints are kept. Objects are not fsynced: a power
    loss on a local disk may lose a checkpoint, a killed process does not.

    One writer at a time per directory: readers may list and load concurrently.
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        *,
        filesystem: pafs.FileSystem | None = None,
        retain: int | None = 3,
        max_workers: int = 8,
    ) -> None:
        if retain is not None and (
            isinstance(retain, bool) or not isinstance(retain, int) or retain < 1
        ):
            raise ConfigError(f"CheckpointStore.retain must be None or an int ≥ 1; got {retain!r}")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError(
                f"CheckpointStore.max_workers must be an int ≥ 1; got {max_workers!r}"
            )
        text = os.fspath(uri)
        if filesystem is None:
            filesystem, text = _open_uri(text)
        self._fs: pafs.FileSystem = filesystem
        self._root = text.rstrip("/") or "/"
        self._uri = redact(os.fspath(uri))
        self._retain = retain
        self._max_workers = max_workers
        self._atomic_put = filesystem.type_name.split("::")[-1] in _ATOMIC_PUT_FILESYSTEMS
        self._log = get_logger("tideflow.checkpoint.store", store=self._uri)

    def __repr__(self) -> str:
        return f"CheckpointStore({self._uri!r}, retain={self._retain})"

    @property
    def uri(self) -> str:
        """The store's URI with any credentials masked."""
        return self._uri

    @property
    def retain(self) -> int | None:
        """How many complete checkpoints are kept after a save (None: all)."""
        return self._retain

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        checkpoint_id: int | CheckpointId,
        states: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> CheckpointInfo:
        """Write a complete checkpoint and apply retention; return its description.

        ``states`` maps names (non-empty, without ``/``) to ``bytes``-like values, Arrow
        tables or record batches, or any JSON-able value. Ids must grow: saving an id that
        already has a complete checkpoint raises :class:`CheckpointError` (a checkpoint is
        never overwritten: delete it first), and so does an id below the latest. Leftovers
        of an earlier interrupted save of the same id are replaced. On any failure the
        partial directory is removed (best effort) and :class:`CheckpointError` is raised.
        """
        cid = CheckpointId.of(checkpoint_id)
        items = [(name, states[name]) for name in _validated_names(states)]
        meta = dict(metadata or {})
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {cid}: metadata must be JSON-able: {e}") from e
        complete = self.ids()
        if cid in complete:
            raise CheckpointError(
                f"checkpoint {cid} already exists in {self._uri}; "
                "checkpoints are never overwritten (delete it first)"
            )
        if complete and cid < complete[-1]:
            raise CheckpointError(
                f"checkpoint ids must grow: the latest in {self._uri} is {complete[-1]}, got {cid}"
            )
        directory = self._dir(cid)
        started = time.monotonic()
        try:
            if self._fs.get_file_info(directory).type != pafs.FileType.NotFound:
                self._remove(directory)  # leftovers of an interrupted save of this id
            self._fs.create_dir(directory, recursive=True)
            workers = max(1, min(self._max_workers, len(items)))
            with ThreadPoolExecutor(workers, thread_name_prefix="tf-ckpt-save") as pool:
                futures = [
                    pool.submit(self._write_object, directory, i, name, value)
                    for i, (name, value) in enumerate(items)
                ]
                try:
                    objects = tuple(f.result() for f in futures)
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
            info = CheckpointInfo(
                checkpoint_id=cid,
                uri=self._uri_of(cid),
                created_at=time.time(),
                metadata=meta,
                objects=objects,
            )
            self._write_manifest(directory, info)
        except BaseException as e:
            self._discard(directory)
            self._log.warning(
                "checkpoint.save_failed", checkpoint_id=cid.value, error=redact(str(e))
            )
            if isinstance(e, CheckpointError) or not isinstance(e, Exception):
                raise
            if isinstance(e, OSError):
                raise self._location_error(f"write checkpoint {cid} to", e) from e
            raise CheckpointError(
                f"saving checkpoint {cid} to {self._uri} failed: {redact(str(e))}"
            ) from e
        self._log.info(
            "checkpoint.saved",
            checkpoint_id=cid.value,
            objects=len(objects),
            bytes=info.total_bytes,
            duration_s=round(time.monotonic() - started, 6),
        )
        self._apply_retention()
        return info

    def delete(self, checkpoint_id: int | CheckpointId) -> None:
        """Remove a checkpoint (complete or partial); its manifest goes first.

        Raises :class:`CheckpointNotFoundError` if there is nothing under that id.
        """
        cid = CheckpointId.of(checkpoint_id)
        directory = self._dir(cid)
        with self._location(f"delete checkpoint {cid} from"):
            if self._fs.get_file_info(directory).type == pafs.FileType.NotFound:
                raise CheckpointNotFoundError(f"no checkpoint {cid} in {self._uri}")
            self._remove(directory)
        self._log.info("checkpoint.deleted", checkpoint_id=cid.value)

    def cleanup_partial(self, *, all: bool = False) -> builtins.list[CheckpointId]:
        """Remove checkpoint directories that have no manifest; return their ids.

        By default only those below the latest complete checkpoint go, so a save in
        progress elsewhere is safe. Pass ``all=True`` when no save can be in progress (at
        restore, after a crash) to remove every partial one.
        """
        dirs = self._scan()
        complete = [cid for cid, done in dirs.items() if done]
        limit = max(complete) if complete else None
        removed = []
        for cid, done in sorted(dirs.items()):
            if not done and (all or (limit is not None and cid < limit)):
                with self._location(f"remove the partial checkpoint {cid} from"):
                    self._remove(self._dir(cid))
                removed.append(cid)
        if removed:
            self._log.info("checkpoint.partial_removed", checkpoint_ids=[c.value for c in removed])
        return removed

    # -- reading ---------------------------------------------------------------------------

    def ids(self) -> builtins.list[CheckpointId]:
        """The ids of the complete checkpoints, in increasing order (reads no manifest)."""
        return sorted(cid for cid, done in self._scan().items() if done)

    def list(self) -> builtins.list[CheckpointInfo]:
        """The complete checkpoints, in increasing id order."""
        return [self.info(cid) for cid in self.ids()]

    def latest(self) -> CheckpointInfo | None:
        """The complete checkpoint with the highest id, or None if there is none."""
        ids = self.ids()
        return self.info(ids[-1]) if ids else None

    def info(self, checkpoint_id: int | CheckpointId) -> CheckpointInfo:
        """Read one checkpoint's manifest; :class:`CheckpointNotFoundError` if incomplete."""
        cid = CheckpointId.of(checkpoint_id)
        path = f"{self._dir(cid)}/{MANIFEST_NAME}"
        with self._location(f"read checkpoint {cid} from"):
            try:
                with self._fs.open_input_stream(path) as f:
                    raw = f.read()
            except FileNotFoundError:
                message = f"no complete checkpoint {cid} in {self._uri}"
                raise CheckpointNotFoundError(message) from None
        try:
            doc = json.loads(raw)
            if doc.get("format") != _FORMAT or doc.get("checkpoint_id") != cid.value:
                raise ValueError(f"format {doc.get('format')!r}, id {doc.get('checkpoint_id')!r}")
            objects = tuple(ObjectInfo(**o) for o in doc["objects"])
            unknown = [o.kind for o in objects if o.kind not in _EXT]
            if unknown:
                raise ValueError(f"unknown object kinds {unknown}")
            return CheckpointInfo(
                checkpoint_id=cid,
                uri=self._uri_of(cid),
                created_at=float(doc["created_at"]),
                metadata=doc["metadata"],
                objects=objects,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(
                f"checkpoint {cid} in {self._uri}: unreadable manifest "
                f"(expected {_FORMAT} for id {cid}): {e}"
            ) from e

    def load(self, checkpoint_id: int | CheckpointId | None = None) -> Checkpoint:
        """Load a complete checkpoint (the latest when no id is given), checking every sum.

        Raises :class:`CheckpointNotFoundError` when there is no such complete checkpoint
        and :class:`CheckpointError`, naming the object, when an object is missing or its
        size or SHA-256 differs from the manifest.
        """
        if checkpoint_id is None:
            ids = self.ids()
            if not ids:
                raise CheckpointNotFoundError(f"no complete checkpoint in {self._uri}")
            checkpoint_id = ids[-1]
        info = self.info(checkpoint_id)
        directory = self._dir(info.checkpoint_id)
        workers = max(1, min(self._max_workers, len(info.objects)))
        with ThreadPoolExecutor(workers, thread_name_prefix="tf-ckpt-load") as pool:
            values = list(pool.map(lambda o: self._read_object(directory, info, o), info.objects))
        states = {o.name: v for o, v in zip(info.objects, values, strict=True)}
        return Checkpoint(info=info, states=states)

    # -- internals -------------------------------------------------------------------------

    def _uri_of(self, cid: CheckpointId) -> str:
        base, sep, query = self._uri.partition("?")
        return f"{base.rstrip('/')}/{cid.dir_name}{sep}{query}"

    def _dir(self, cid: CheckpointId) -> str:
        return f"{self._root.rstrip('/')}/{cid.dir_name}"

    @contextlib.contextmanager
    def _location(self, action: str) -> Iterator[None]:
        """Raise an I/O error of the filesystem as a :class:`CheckpointLocationError`."""
        try:
            yield
        except CheckpointError:
            raise
        except OSError as e:
            raise self._location_error(action, e) from e

    def _location_error(self, action: str, error: BaseException) -> CheckpointLocationError:
        return CheckpointLocationError(action, self._uri, str(error))

    def _scan(self) -> dict[CheckpointId, bool]:
        """Checkpoint directories under the root → whether each has its manifest."""
        selector = pafs.FileSelector(self._root, recursive=False, allow_not_found=True)
        found: dict[CheckpointId, str] = {}
        with self._location("list"):
            entries = self._fs.get_file_info(selector)
        for entry in entries:
            cid = CheckpointId.from_dir_name(entry.base_name)
            if cid is not None and entry.type == pafs.FileType.Directory:
                found[cid] = f"{entry.path}/{MANIFEST_NAME}"
        if not found:
            return {}
        with self._location("list"):
            manifests = self._fs.get_file_info(builtins.list(found.values()))
        return {cid: m.type == pafs.FileType.File for cid, m in zip(found, manifests, strict=True)}

    def _write_object(self, directory: str, index: int, name: str, value: Any) -> ObjectInfo:
        kind, data = _encode(name, value)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]
        file = f"{index:04d}-{safe}{_EXT[kind]}"
        digest = hashlib.sha256(data).hexdigest()
        with self._fs.open_output_stream(f"{directory}/{file}") as out:
            out.write(data)
        return ObjectInfo(name=name, kind=kind, file=file, size=len(data), sha256=digest)

    def _write_manifest(self, directory: str, info: CheckpointInfo) -> None:
        doc = {
            "format": _FORMAT,
            "checkpoint_id": info.checkpoint_id.value,
            "created_at": info.created_at,
            "metadata": dict(info.metadata),
            "objects": [
                {"name": o.name, "kind": o.kind, "file": o.file, "size": o.size, "sha256": o.sha256}
                for o in info.objects
            ],
        }
        data = json.dumps(doc, indent=1, ensure_ascii=False).encode()
        final = f"{directory}/{MANIFEST_NAME}"
        if self._atomic_put:  # one PUT: the object appears whole or not at all
            with self._fs.open_output_stream(final) as out:
                out.write(data)
            return
        temp = f"{directory}/.{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
        with self._fs.open_output_stream(temp) as out:
            out.write(data)
        self._fs.move(temp, final)  # a rename: atomic on local disks and HDFS

    def _read_object(self, directory: str, info: CheckpointInfo, obj: ObjectInfo) -> Any:
        where = f"checkpoint {info.checkpoint_id} in {self._uri}: object {obj.name!r} ({obj.file})"
        with self._location(f"read checkpoint {info.checkpoint_id} from"):
            try:
                with self._fs.open_input_stream(f"{directory}/{obj.file}") as f:
                    data = f.read()
            except FileNotFoundError:
                raise CheckpointError(f"{where} is missing") from None
        if len(data) != obj.size:
            raise CheckpointError(
                f"{where} is corrupt: expected {obj.size} bytes, found {len(data)}"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != obj.sha256:
            raise CheckpointError(
                f"{where} is corrupt: expected sha256 {obj.sha256}, found {digest}"
            )
        return _decode(obj.kind, data)

    def _remove(self, directory: str) -> None:
        manifest = f"{directory}/{MANIFEST_NAME}"
        if self._fs.get_file_info(manifest).type == pafs.FileType.File:
            self._fs.delete_file(manifest)  # the checkpoint stops existing here
        self._fs.delete_dir(directory)

    def _discard(self, directory: str) -> None:
        try:
            self._remove(directory)
        except Exception as e:  # best effort: cleanup_partial() removes what is left
            self._log.warning(
                "checkpoint.discard_failed", directory=redact(directory), error=redact(str(e))
            )

    def _apply_retention(self) -> None:
        if self._retain is None:
            return
        for cid in self.ids()[: -self._retain]:
            try:
                self.delete(cid)
            except Exception as e:  # the new checkpoint is saved: report, do not fail
                self._log.warning(
                    "checkpoint.retention_failed", checkpoint_id=cid.value, error=redact(str(e))
                )


def _open_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """``FileSystem.from_uri`` for a URI or a (possibly relative) local path."""
    text = uri if "://" in uri else os.path.abspath(uri)
    problem = None
    try:
        return pafs.FileSystem.from_uri(text)
    except (ValueError, OSError, TypeError) as e:
        problem = redact(str(e))
    # Raised outside `except`: pyarrow's error repeats the raw URI, credentials included,
    # and must not ride along as __context__.
    raise ConfigError(f"CheckpointStore: cannot open {redact(uri)!r}: {problem}")


def _validated_names(states: Mapping[str, Any]) -> builtins.list[str]:
    if not isinstance(states, Mapping):
        raise CheckpointError(
            f"states must be a mapping of name → value; got {type(states).__name__}"
        )
    for name in states:
        if not isinstance(name, str) or not name or "/" in name or "\x00" in name:
            raise CheckpointError(
                f"state object names must be non-empty strings without '/' or NUL; got {name!r}"
            )
    return builtins.list(states)


def _encode(name: str, value: Any) -> tuple[ObjectKind, bytes | pa.Buffer]:
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes", bytes(value)
    if isinstance(value, pa.Table | pa.RecordBatch):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, value.schema) as writer:
            writer.write(value)
        return ("arrow_table" if isinstance(value, pa.Table) else "arrow_batch"), sink.getvalue()
    try:
        return "json", json.dumps(value, ensure_ascii=False).encode()
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"state {name!r}: cannot encode a {type(value).__name__} ({e}); give bytes, a "
            "pyarrow Table or RecordBatch, or a JSON-able value"
        ) from e


def _decode(kind: str, data: bytes) -> Any:
    if kind == "bytes":
        return data
    if kind == "json":
        return json.loads(data)
    reader = pa.ipc.open_file(pa.py_buffer(data))
    return reader.read_all() if kind == "arrow_table" else reader.get_batch(0)
