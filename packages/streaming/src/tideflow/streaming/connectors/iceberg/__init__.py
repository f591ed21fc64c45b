"""Apache Iceberg tables (pyiceberg): a snapshot or incremental source and an exactly-once sink.

>>> catalog = {"type": "sql", "uri": "sqlite:////data/catalog.db", "warehouse": "/data/wh"}
>>> source = IcebergSource("raw.events", catalog=catalog, unbounded=True, poll_interval_s=2)
>>> sink = IcebergSink("clean.events", catalog=catalog)

Connectors hold the table identifier (``"namespace.table"``) and the catalog's properties
(a dict, see :func:`load_catalog`); catalogs are built where they are used (in the engine's
actors and on the driver), never in constructors, so connectors stay picklable.

**Source, bounded** (default): one snapshot — ``snapshot_id``, or the table's latest at the
job's first discovery (pinned in the job directory, so a rerun reads the same snapshot). Its
data files, sorted by path, are cut into splits of ``files_per_split`` files; a split's state
is ``{"part": file index, "row": rows returned of that file, "name": file path}``, so a
resume reopens one file and skips rows within it (deletes are applied the same way each
time, so the skip is exact).

**Source, unbounded** (``unbounded=True``): one split that follows the main branch snapshot
by snapshot and reads only what each one appended (``incremental_append_scan``); snapshots
that delete or overwrite add no rows. Its state is ``{"snapshot_id": the last snapshot read
completely (None: none yet), "next": the snapshot being read, "part": …, "row": …}`` — a
resume continues inside ``next`` without skipping or repeating a row. The table is polled
every ``poll_interval_s`` for new snapshots. It starts after ``snapshot_id``, or with
``start="earliest"`` (default) from the table's first snapshot, or with ``start="latest"``
after the latest snapshot at the first discovery (pinned).

**Sink**: each writer stages its rows of an epoch as Parquet in the job directory
(``<job_uri>/iceberg-staging/…``); when the epoch's checkpoint is durable, the driver appends
them as one snapshot whose summary holds ``tideflow.job_id`` and ``tideflow.epoch``, and in
the same metadata commit sets the table property ``tideflow.epoch.<job_id>`` to the epoch.
An epoch at or below that mark (or named by a snapshot summary) is never appended again, so
a replay after a crash — between the checkpoint and the commit, or between the commit and
the clean-up of the staging — writes nothing twice. A commit first publishes any earlier
epoch still staged (in order), so an epoch whose commit failed is not lost when a later
checkpoint was saved before the job stopped. The table (and its namespace) is created on
the first commit from ``schema`` or the first rows' schema. A fresh job (no checkpoint)
whose id already has a mark in the table fails: the id was reused without its checkpoints.

**Modules.** ``_source`` (both source modes), ``_sink`` (staging and appending),
``_catalog`` (catalogs from properties, the table both name), ``_schema`` (rows fitted to
the table's schema).
"""

from __future__ import annotations

from tideflow.streaming.connectors.iceberg._catalog import load_catalog
from tideflow.streaming.connectors.iceberg._sink import IcebergSink
from tideflow.streaming.connectors.iceberg._source import IcebergSource

__all__ = ["IcebergSink", "IcebergSource", "load_catalog"]
