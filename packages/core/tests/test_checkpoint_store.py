"""The checkpoint store, on a local directory and on a real S3-protocol server (moto)."""

from __future__ import annotations

import importlib.util
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
import structlog

from tideflow.core.checkpoint import (
    MANIFEST_NAME,
    CheckpointError,
    CheckpointId,
    CheckpointLocationError,
    CheckpointNotFoundError,
    CheckpointStore,
)
from tideflow.core.errors import ConfigError

TESTS_DIR = Path(__file__).resolve().parent


def _helper(name: str) -> ModuleType:
    """Import a helper module of this folder (pytest's importlib mode puts none on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, TESTS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooked: Callable[[pafs.FileSystem, Callable[[str], None]], pafs.FileSystem] = _helper(
    "_ckpt_fs"
).hooked

STATES: dict[str, Any] = {
    "blob": b"\x00\x01binary\xff",
    "offsets": {"orders/0": 41, "orders/1": 7, "note": "ünïcode"},
    "table": pa.table({"id": [1, 2, 3], "name": ["a", "b", None]}),
    "batch": pa.record_batch({"x": [0.5, 1.5]}),
}


@dataclass(frozen=True)
class Backend:
    """Where a store under test lives: its URI and the raw filesystem beneath it."""

    name: str
    uri: str
    fs: pafs.FileSystem
    root: str

    def store(self, **kwargs: Any) -> CheckpointStore:
        return CheckpointStore(self.uri, **kwargs)

    def hooked_store(self, before_write: Callable[[str], None], **kwargs: Any) -> CheckpointStore:
        """A store on the same directory whose every file write first calls ``before_write``."""
        return CheckpointStore(self.root, filesystem=hooked(self.fs, before_write), **kwargs)

    def files(self, checkpoint_id: int) -> list[str]:
        selector = pafs.FileSelector(
            f"{self.root}/{CheckpointId(checkpoint_id).dir_name}", allow_not_found=True
        )
        return sorted(i.base_name for i in self.fs.get_file_info(selector))

    def exists(self, checkpoint_id: int) -> bool:
        info = self.fs.get_file_info(f"{self.root}/{CheckpointId(checkpoint_id).dir_name}")
        return info.type != pafs.FileType.NotFound


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        root = str(tmp_path / "ckpts")
        return Backend("local", root, pafs.LocalFileSystem(), root)
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return Backend("s3", server.uri(bucket, "ckpts"), server.filesystem(), f"{bucket}/ckpts")


def _assert_same_states(loaded: dict[str, Any], saved: dict[str, Any]) -> None:
    assert loaded.keys() == saved.keys()
    for name, value in saved.items():
        if isinstance(value, pa.Table | pa.RecordBatch):
            assert type(loaded[name]) is type(value)
            assert loaded[name].equals(value)
        else:
            assert loaded[name] == value


# -- every backend -------------------------------------------------------------------------


def test_round_trip_restores_bytes_json_and_arrow(backend: Backend) -> None:
    store = backend.store()
    info = store.save(3, STATES, metadata={"job": "orders"})

    checkpoint = store.load(3)

    _assert_same_states(dict(checkpoint.states), STATES)
    assert checkpoint.checkpoint_id == CheckpointId(3) == info.checkpoint_id
    assert checkpoint.metadata == {"job": "orders"}
    assert checkpoint.created_at == info.created_at > 0
    assert [o.kind for o in checkpoint.info.objects] == [
        "bytes",
        "json",
        "arrow_table",
        "arrow_batch",
    ]


def test_objects_are_written_in_parallel(backend: Backend) -> None:
    barrier = threading.Barrier(4, timeout=10)

    def wait_for_all_four(path: str) -> None:
        if MANIFEST_NAME not in path:
            barrier.wait()  # breaks (and fails the save) unless 4 writes are open at once

    store = backend.hooked_store(wait_for_all_four, max_workers=4)
    store.save(1, {f"part-{i}": bytes([i]) * 100 for i in range(4)})

    assert store.load(1).states["part-3"] == b"\x03" * 100


def test_manifest_is_written_after_every_object(backend: Backend) -> None:
    written: list[str] = []
    store = backend.hooked_store(written.append)

    store.save(1, STATES)

    assert len(written) == len(STATES) + 1
    assert MANIFEST_NAME in written[-1]
    assert all(MANIFEST_NAME not in path for path in written[:-1])


def test_failing_object_leaves_latest_at_previous_checkpoint(backend: Backend) -> None:
    store = backend.store()
    store.save(1, STATES)

    with pytest.raises(CheckpointError, match="'broken'"):
        store.save(2, {**STATES, "broken": object()})

    latest = store.latest()
    assert latest is not None and latest.checkpoint_id == CheckpointId(1)
    assert not backend.exists(2)  # the partial directory was discarded


def test_failed_manifest_write_leaves_latest_at_previous_checkpoint(backend: Backend) -> None:
    def fail_on_manifest_of_2(path: str) -> None:
        if CheckpointId(2).dir_name in path and MANIFEST_NAME in path:
            raise OSError("disk full")

    store = backend.hooked_store(fail_on_manifest_of_2)
    store.save(1, STATES)

    with pytest.raises(CheckpointError, match="disk full"):
        store.save(2, STATES)

    assert [c.checkpoint_id for c in store.list()] == [CheckpointId(1)]
    assert store.load().checkpoint_id == CheckpointId(1)


def test_process_killed_mid_save_leaves_latest_at_previous(backend: Backend) -> None:
    uri = backend.uri if backend.name == "s3" else f"file://{backend.root}"
    child = subprocess.Popen(
        [sys.executable, str(TESTS_DIR / "_ckpt_child.py"), uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=TESTS_DIR,
    )
    watchdog = threading.Timer(60, child.kill)  # a child that never gets READY fails the test
    watchdog.start()
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # "" if the child died before READY
        assert line == "READY\n", f"child said {line!r} instead of READY"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
        child.communicate()
    store = backend.store()

    assert store.load().checkpoint_id == CheckpointId(1)
    assert backend.files(2) == ["0000-blob.bin", "0001-offsets.json", "0002-table.arrow"]
    assert store.cleanup_partial(all=True) == [CheckpointId(2)]
    assert not backend.exists(2)
    assert store.ids() == [CheckpointId(1)]


def test_retention_keeps_the_last_n_checkpoints(backend: Backend) -> None:
    store = backend.store(retain=2)

    for cid in (1, 2, 5, 9, 10):
        store.save(cid, {"n": cid})

    assert store.ids() == [CheckpointId(9), CheckpointId(10)]
    assert not backend.exists(5)
    assert store.load(9).states == {"n": 9}


def test_retain_none_keeps_every_checkpoint(backend: Backend) -> None:
    store = backend.store(retain=None)

    for cid in range(1, 6):
        store.save(cid, {"n": cid})

    assert [int(c) for c in store.ids()] == [1, 2, 3, 4, 5]


def test_list_returns_complete_checkpoints_in_id_order(backend: Backend) -> None:
    store = backend.store(retain=None)
    for cid in (2, 9, 10, 100):
        store.save(cid, {"n": cid}, metadata={"at": cid})
    backend.fs.create_dir(f"{backend.root}/{CheckpointId(200).dir_name}")  # partial: no manifest
    with backend.fs.open_output_stream(f"{backend.root}/notes.txt") as f:
        f.write(b"not a checkpoint")

    listed = store.list()

    assert [int(c.checkpoint_id) for c in listed] == [2, 9, 10, 100]
    assert [c.metadata["at"] for c in listed] == [2, 9, 10, 100]
    assert all(c.names == ("n",) for c in listed)
    latest = store.latest()
    assert latest is not None and latest.checkpoint_id == CheckpointId(100)


def test_empty_store_has_no_latest_and_load_raises_not_found(backend: Backend) -> None:
    store = backend.store()

    assert store.list() == []
    assert store.latest() is None
    with pytest.raises(CheckpointNotFoundError, match="no complete checkpoint"):
        store.load()


def test_loading_a_partial_checkpoint_raises_not_found(backend: Backend) -> None:
    store = backend.store()
    store.save(1, STATES)
    backend.fs.create_dir(f"{backend.root}/{CheckpointId(2).dir_name}")

    with pytest.raises(CheckpointNotFoundError, match="checkpoint 2"):
        store.load(2)


def test_corrupted_object_is_detected_on_load(backend: Backend) -> None:
    store = backend.store()
    info = store.save(1, STATES)
    target = next(o for o in info.objects if o.name == "blob")
    path = f"{backend.root}/{CheckpointId(1).dir_name}/{target.file}"
    with backend.fs.open_output_stream(path) as f:
        f.write(b"X" * target.size)  # same size, different bytes

    with pytest.raises(CheckpointError, match=r"object 'blob' .* is corrupt: expected sha256"):
        store.load(1)


def test_missing_object_is_reported_by_name(backend: Backend) -> None:
    store = backend.store()
    info = store.save(1, STATES)
    target = next(o for o in info.objects if o.name == "table")
    backend.fs.delete_file(f"{backend.root}/{CheckpointId(1).dir_name}/{target.file}")

    with pytest.raises(CheckpointError, match=r"object 'table' .* is missing"):
        store.load(1)


def test_saving_an_existing_checkpoint_is_refused(backend: Backend) -> None:
    store = backend.store()
    store.save(1, {"v": "first"})

    with pytest.raises(CheckpointError, match="already exists"):
        store.save(1, {"v": "second"})

    assert store.load(1).states == {"v": "first"}


def test_saving_an_id_below_the_latest_is_refused(backend: Backend) -> None:
    store = backend.store()
    store.save(5, {"v": 5})

    with pytest.raises(CheckpointError, match="ids must grow"):
        store.save(4, {"v": 4})


def test_save_replaces_leftovers_of_an_interrupted_save_of_the_same_id(backend: Backend) -> None:
    store = backend.store()
    backend.fs.create_dir(f"{backend.root}/{CheckpointId(1).dir_name}")
    stale = f"{backend.root}/{CheckpointId(1).dir_name}/0000-stale.bin"
    with backend.fs.open_output_stream(stale) as f:
        f.write(b"old")

    store.save(1, {"fresh": b"new"})

    assert "0000-stale.bin" not in backend.files(1)
    assert store.load(1).states == {"fresh": b"new"}


def test_cleanup_partial_spares_partials_above_latest_unless_all(backend: Backend) -> None:
    store = backend.store(retain=None)
    store.save(1, {"v": 1})
    store.save(3, {"v": 3})
    for cid in (2, 4):
        backend.fs.create_dir(f"{backend.root}/{CheckpointId(cid).dir_name}")

    assert store.cleanup_partial() == [CheckpointId(2)]  # 4 may be a save in progress
    assert backend.exists(4)
    assert store.cleanup_partial(all=True) == [CheckpointId(4)]
    assert store.ids() == [CheckpointId(1), CheckpointId(3)]


def test_delete_removes_a_checkpoint(backend: Backend) -> None:
    store = backend.store()
    store.save(1, {"v": 1})
    store.save(2, {"v": 2})

    store.delete(2)

    assert store.ids() == [CheckpointId(1)]
    assert not backend.exists(2)
    with pytest.raises(CheckpointNotFoundError):
        store.delete(2)


@pytest.mark.parametrize("name", ["", "a/b", "nul\x00"])
def test_invalid_object_names_are_rejected(backend: Backend, name: str) -> None:
    store = backend.store()

    with pytest.raises(CheckpointError, match="names must be non-empty strings"):
        store.save(1, {name: b"x"})

    assert store.ids() == []


# -- S3 only: credentials --------------------------------------------------------------------


def test_credentials_never_appear_in_errors_reprs_or_logs(s3_server: Any, s3_bucket: str) -> None:
    secret = "sup3r-s3cret-K3Y"
    uri = s3_server.uri(s3_bucket, "ckpts").replace(
        f"{s3_server.access_key}:{s3_server.secret_key}@", f"AKIDSECRETID:{secret}@"
    )
    texts: list[str] = []
    with structlog.testing.capture_logs() as logs:
        store = CheckpointStore(uri)
        store.save(1, {"v": 1})
        store.save(2, {"v": 2})
        texts += [repr(store), store.uri, repr(store.load(2).info)]
        with pytest.raises(CheckpointError) as refused:
            store.save(2, {"v": 2})
        with pytest.raises(CheckpointNotFoundError) as missing:
            store.load(7)
        bad_uris = [
            uri + "&bogus=1",
            f"zzz://AKIDSECRETID:{secret}@bucket/x",  # pyarrow's message repeats this URI
            f"zzz://bucket/x?secret_key={secret}&session_token={secret}",
        ]
        for bad in bad_uris:
            with pytest.raises(ConfigError, match="cannot open") as bad_uri:
                CheckpointStore(bad)
            texts += [str(bad_uri.value), repr(bad_uri.value.__cause__)]
            texts += [repr(bad_uri.value.__context__)]
    texts += [str(refused.value), str(missing.value)]
    texts += [repr(entry) for entry in logs]

    assert logs and "s3://***@" in store.uri
    for text in texts:
        assert secret not in text and "AKIDSECRETID" not in text, text


# -- an unusable checkpoint location ----------------------------------------------------------


def test_a_location_under_a_file_fails_the_save_naming_the_checkpoint_location(
    tmp_path: Path,
) -> None:
    (tmp_path / "afile").write_text("not a directory")  # unwritable even for root
    location = tmp_path / "afile" / "ckpt"
    store = CheckpointStore(location)

    with pytest.raises(CheckpointLocationError) as failed:
        store.save(1, {"v": 1})

    message = str(failed.value)
    assert message.startswith(f"cannot write checkpoint 1 to the checkpoint location '{location}'")
    assert "Not a directory" in message
    assert message.endswith(f"(expected {CheckpointLocationError.EXPECTED})")
    assert isinstance(failed.value.__cause__, OSError)


def test_an_unreachable_endpoint_fails_naming_the_location_and_never_its_credentials() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = "sup3r-s3cret-K3Y"
    store = CheckpointStore(
        f"s3://AKIDSECRETID:{secret}@bucket/ckpt?endpoint_override=127.0.0.1:{port}&scheme=http"
    )

    with pytest.raises(CheckpointLocationError) as failed:
        store.ids()

    message = str(failed.value)
    assert message.startswith(
        f"cannot list the checkpoint location 's3://***@bucket/ckpt?endpoint_override="
        f"127.0.0.1:{port}&scheme=http': "
    )
    text = "".join(traceback.format_exception(failed.value))
    assert secret not in text and "AKIDSECRETID" not in text, text


def test_a_location_error_survives_pickling() -> None:
    error = CheckpointLocationError("list", "s3://KEY:SECRET@b/ckpt", "connection refused")
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is CheckpointLocationError and str(copy) == str(error)
    assert "SECRET" not in str(copy) and copy.uri == "s3://***@b/ckpt"


# -- values and configuration ------------------------------------------------------------------


def test_checkpoint_id_orders_and_names_directories() -> None:
    cid = CheckpointId(42)

    assert cid.dir_name == "chk-00000000000000000042"
    assert CheckpointId.from_dir_name(cid.dir_name) == cid
    assert CheckpointId.from_dir_name("chk-42") is None
    assert cid.next() == CheckpointId(43) > cid
    assert int(cid) == 42 and CheckpointId.of(42) == cid and CheckpointId.of(cid) is cid


@pytest.mark.parametrize("bad", [-1, True, 1.0, "3", 10**20])
def test_checkpoint_id_rejects_what_is_not_an_epoch(bad: Any) -> None:
    with pytest.raises(ConfigError, match="CheckpointId must be an int from 0"):
        CheckpointId(bad)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"retain": 0}, "retain"), ({"max_workers": 0}, "max_workers")]
)
def test_store_rejects_invalid_configuration(
    tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=f"CheckpointStore.{field}"):
        CheckpointStore(tmp_path, **kwargs)


def test_relative_local_paths_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    CheckpointStore("rel/ckpts").save(1, {"v": 1})

    assert CheckpointStore(tmp_path / "rel" / "ckpts").load().states == {"v": 1}
