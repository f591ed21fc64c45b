"""Child process for the kill-mid-save test (run as a script, not imported by pytest).

``python _ckpt_child.py URI`` saves checkpoint 1 to the store at URI, then starts
checkpoint 2: once its objects are written and the manifest is about to be, it prints
``READY`` and sleeps, waiting for the parent to SIGKILL it.
"""

from __future__ import annotations

import sys
import time

import pyarrow as pa
import pyarrow.fs as pafs
from _ckpt_fs import hooked

from tideflow.core.checkpoint import MANIFEST_NAME, CheckpointId, CheckpointStore
from tideflow.core.observability import configure_logging

STATES = {"blob": b"\x00" * 1000, "offsets": {"p0": 17}, "table": pa.table({"x": [1, 2, 3]})}


def _block_before_manifest_of_2(path: str) -> None:
    if CheckpointId(2).dir_name in path and MANIFEST_NAME in path:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        time.sleep(120)


def main(uri: str) -> None:
    configure_logging(format="json", stream=sys.stderr)  # stdout carries READY only
    filesystem, root = pafs.FileSystem.from_uri(uri)
    store = CheckpointStore(root, filesystem=hooked(filesystem, _block_before_manifest_of_2))
    store.save(1, STATES)
    store.save(2, STATES)
    raise SystemExit("checkpoint 2 was saved: the hook did not block")


if __name__ == "__main__":
    main(sys.argv[1])
