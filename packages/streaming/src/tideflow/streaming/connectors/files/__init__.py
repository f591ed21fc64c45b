"""File sources and sinks over ``pyarrow.fs``: Parquet and JSON lines, local, S3 or HDFS.

>>> source = ParquetSource("s3://KEY:SECRET@bucket/videos/?endpoint_override=host:9000")
>>> sink = ParquetSink("/data/out")

Sources are bounded: a directory's files (recursive, sorted; names starting with ``_`` or
``.`` are skipped, so ``_SUCCESS`` and a sink's ``_staging/`` are never read) are cut into
batch groups of ``files_per_group`` files, one split each; a resume continues inside a file
right after the last batch returned. Sinks are two-phase: each epoch is staged under
``<uri>/_staging/<job_id>/`` and moved to ``<uri>/<job_id>-e<epoch>-w<writer>-<n>.<ext>`` on
commit, so a sink's output directory can be read back by the matching source and shows
only committed epochs.

A sink's output directory keeps one schema, so that it reads back as one dataset: it is
``schema=`` if given, else that of the files already there (a rerun keeps it), else that of
the first rows written. Later rows are cast to it when that is safe (a wider integer, a
missing nullable column as nulls, another column order); rows that do not fit (an int
column turned to text, a new column) stop the job with a :class:`SinkError` that names the
sink, the column and both types. For JSON lines the types compared are those a reader infers
from the text (any integer is an int64, bytes and dates are strings).

**Modules.** ``_source`` (the formats' sources), ``_groups`` (listing into batch groups,
resumable reading), ``_sink`` (the formats' sinks), ``_one_schema`` (the output's one
schema); the staging and publishing of files is the kit's (``connectors/_staged.py``).
"""

from __future__ import annotations

from tideflow.streaming.connectors.files._sink import JSONLSink, ParquetSink
from tideflow.streaming.connectors.files._source import JSONLSource, ParquetSource

__all__ = ["JSONLSink", "JSONLSource", "ParquetSink", "ParquetSource"]
