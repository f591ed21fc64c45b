"""Checkpoints: a durable store, the epoch coordinator, and record-level acknowledgements.

* :class:`CheckpointStore` writes named state objects (bytes, JSON, Arrow) to any
  ``pyarrow.fs`` URI (local, ``file://``, ``s3://``, ``hdfs://``); a checkpoint exists once
  its manifest, written last, does. :class:`CheckpointId` is the epoch number.
* :class:`EpochCoordinator` completes an epoch once every participant acknowledged it,
  strictly in order, saves it and calls completion callbacks (two-phase sinks commit there).
* :class:`AckTracker` turns out-of-order record acks into each partition's committable
  offset, in memory proportional to the gaps.

>>> store = CheckpointStore("/tmp/ckpts", retain=3)                    # doctest: +SKIP
>>> coordinator = EpochCoordinator(store=store, timeout_s=60)          # doctest: +SKIP
>>> coordinator.register("source"); coordinator.register("sink")       # doctest: +SKIP
>>> restored = coordinator.restore()  # None on a fresh store          # doctest: +SKIP
>>> epoch = coordinator.begin_epoch()                                  # doctest: +SKIP
>>> coordinator.ack(epoch, "source", {"offsets": {"0": 42}})           # doctest: +SKIP
>>> coordinator.ack(epoch, "sink", b"txn-7")  # saved, then on_complete  # doctest: +SKIP
"""

from __future__ import annotations

from tideflow.core.checkpoint._acks import AckTracker
from tideflow.core.checkpoint._coordinator import AbortCallback, CompleteCallback, EpochCoordinator
from tideflow.core.checkpoint._ids import (
    Checkpoint,
    CheckpointId,
    CheckpointInfo,
    ObjectInfo,
    ObjectKind,
)
from tideflow.core.checkpoint._store import MANIFEST_NAME, CheckpointStore
from tideflow.core.errors import (
    CheckpointError,
    CheckpointLocationError,
    CheckpointNotFoundError,
    EpochAbortedError,
)

__all__ = [
    "MANIFEST_NAME",
    "AbortCallback",
    "AckTracker",
    "Checkpoint",
    "CheckpointError",
    "CheckpointId",
    "CheckpointInfo",
    "CheckpointLocationError",
    "CheckpointNotFoundError",
    "CheckpointStore",
    "CompleteCallback",
    "EpochAbortedError",
    "EpochCoordinator",
    "ObjectInfo",
    "ObjectKind",
]
