# --8<-- [start:example]
"""Checkpoints without an engine: a store, an epoch coordinator and record-level acks."""

import tempfile

import pyarrow as pa

from tideflow.core.checkpoint import AckTracker, CheckpointStore, EpochCoordinator

store = CheckpointStore(tempfile.mkdtemp(), retain=3)  # or s3://…, hdfs://…, file://…
coordinator = EpochCoordinator(store=store, timeout_s=60)
for participant in ("source", "sink"):
    coordinator.register(participant)
committed = []
coordinator.on_complete(lambda epoch, states: committed.append(epoch))  # a sink commits here

restored = coordinator.restore()  # None on a fresh store
epoch = coordinator.begin_epoch()
coordinator.ack(epoch, "sink", pa.table({"pending_files": ["part-0.parquet"]}))
coordinator.ack(epoch, "source", {"offsets": {"0": 42}})  # all acked: saved, then committed
print(store.latest().checkpoint_id, store.load().states["source"], committed)

acks = AckTracker()
acks.track_range(("orders", 0), 100, 110)  # records 100..109 emitted
for offset in (101, 100, 103):  # acknowledged out of order
    acks.ack(("orders", 0), offset)
print(acks.committable(("orders", 0)))  # 102: the next offset to commit
assert acks.committable(("orders", 0)) == 102 and committed == [epoch]
# --8<-- [end:example]
