"""Lance datasets (pylance): an exactly-once appending sink and a versioned, resumable source.

>>> sink = LanceSink("s3://bucket/frames.lance", storage_options={...},
...                  index={"column": "vector", "index_type": "IVF_PQ", "num_partitions": 256})
>>> source = LanceSource("s3://bucket/frames.lance", version=12)

**Sink**: writers write their rows of an epoch as uncommitted fragments in the dataset
(``lance.fragment.write_fragments``; invisible to readers) and record them in the job
directory (``<job_uri>/lance-staging/…``). When the epoch's checkpoint is durable, the
driver commits them as one ``Append`` version whose transaction properties hold
``tideflow.job_id`` and ``tideflow.epoch``. Before appending, the versions since this job's
last commit are read back: an epoch already there is skipped, so a replay after a crash
writes nothing twice. A commit first publishes any earlier epoch still staged (in order).
``recover`` deletes the fragment files of epochs after the restored checkpoint (local and
S3 datasets; elsewhere they stay as unreferenced files until ``cleanup_old_versions``).
The dataset is created (empty, from ``schema`` or the first rows' schema) by the first
writer that needs it; rows must then fit its schema (columns by name, types castable).

The engine's sink contract has no end-of-job hook, so a vector ``index`` is maintained in
commits: once the dataset holds ``index_every_rows`` rows the index is built, and whenever
that many rows are not yet indexed they are added (``optimize_indices``). A failure to index
is logged and retried on a later commit; the data stays committed.

**Source**: one version (``version``, or the latest at the job's first discovery, pinned
in the job directory), split by fragments (``fragments_per_split`` each); a split's state is
``{"part": fragment index, "row": rows returned of it, "name": "fragment-<id>"}``, so a
resume skips rows within one fragment (Lance reads from the offset, not from the start).

**Modules.** ``_sink`` (commits, recovery, indexes), ``_writer`` (fragments per epoch),
``_source``, ``_dataset`` (opening datasets, storage options, Lance's errors as ours).
"""

from __future__ import annotations

from tideflow.streaming.connectors.lance._sink import LanceSink
from tideflow.streaming.connectors.lance._source import LanceSource

__all__ = ["LanceSink", "LanceSource"]
