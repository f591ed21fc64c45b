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
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.streaming.connectors._base import JSON, JobContext, SinkWriter, Source, Split
from tideflow.streaming.connectors._deps import check_installed, require
from tideflow.streaming.connectors._kit import (
    RemovesStaged,
    check_columns,
    check_count,
    check_uri,
    describe_error,
    guarded,
    parse_position,
)
from tideflow.streaming.connectors._tables import EpochStaging, PartsReader, key_of, pinned
from tideflow.streaming.errors import ConfigError, SinkError, SourceError

if TYPE_CHECKING:
    import lance

__all__ = ["LanceSink", "LanceSource"]

JOB_PROPERTY = "tideflow.job_id"
EPOCH_PROPERTY = "tideflow.epoch"
INDEX_TYPES = ("IVF_PQ", "IVF_HNSW_SQ", "IVF_HNSW_PQ", "IVF_SQ", "IVF_FLAT", "IVF_RQ")
SCALAR_INDEX_TYPES = ("INVERTED", "BTREE", "BITMAP", "LABEL_LIST", "NGRAM")
_SECRET_WORDS = ("secret", "key", "token", "password", "credential")


def _uri_of(owner: str, uri: Any) -> str:
    text = check_uri(owner, uri)
    return text if "://" in text else os.path.abspath(text)


def _describe(options: Mapping[str, str] | None) -> str:
    if not options:
        return ""
    shown = ", ".join(
        f"{k}={'***' if any(w in k.lower() for w in _SECRET_WORDS) else v}"
        for k, v in sorted(options.items())
    )
    return f", storage_options={{{shown}}}"


def _call(owner: str, what: str, error: type[Exception], fn: Any, *args: Any, **kw: Any) -> Any:
    """Run a Lance call; its errors become ``error`` naming ``owner``, without secrets (Lance
    raises OSError, ValueError, RuntimeError, …)."""
    return guarded(owner, what, error, fn, *args, catch=(Exception,), **kw)


def _open_dataset(uri: str, options: Mapping[str, str] | None, **kw: Any) -> lance.LanceDataset:
    require("lance")  # without pylance: the error that names the extra
    import lance

    return lance.dataset(uri, storage_options=dict(options or {}) or None, **kw)


def _exists(uri: str, options: Mapping[str, str] | None) -> bool:
    try:
        _open_dataset(uri, options)
    except (ValueError, OSError, FileNotFoundError):
        return False
    return True


# -- sink -----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class LanceSink(RemovesStaged):
    """Appends each epoch as one Lance version, exactly once (see the module docs).

    ``LanceSink(uri, storage_options=None, schema=None, index=None, index_every_rows=100_000,
    rows_per_fragment=65_536)``.
    """

    parallel_writes: ClassVar[bool] = True  # fragments per writer; one version per epoch

    uri: str | os.PathLike[str]
    """The dataset: a local path or ``s3://bucket/path.lance`` (with ``storage_options``)."""
    _: KW_ONLY
    storage_options: Mapping[str, str] | None = None
    """Lance's object-store options: ``aws_access_key_id``, ``aws_secret_access_key``,
    ``aws_endpoint``, ``aws_region``, ``allow_http``… Secrets are never shown."""
    schema: pa.Schema | None = None
    """The dataset's schema if the sink creates it (None: the first rows' schema)."""
    index: Mapping[str, Any] | None = None
    """A vector index to maintain: ``{"column": "vector", "index_type": "IVF_PQ", "name":
    …, **create_index parameters}`` (``num_partitions``, ``num_sub_vectors``, ``metric``…)."""
    index_every_rows: int = 100_000
    """Build the index once this many rows are committed; add to it whenever this many
    committed rows are not indexed yet."""
    rows_per_fragment: int = 65_536
    """A writer writes a fragment once it holds this many rows of an epoch (and at its end)."""
    scalar_indexes: Mapping[str, str] | None = None
    """Scalar indexes to maintain, column → type (``INVERTED`` for full-text search,
    ``BTREE``, ``BITMAP``…): built at the first commit that leaves rows in the dataset,
    updated whenever ``scalar_index_every_rows`` committed rows are not indexed yet. Lance
    searches rows not yet indexed too (full-text and filters stay complete)."""
    scalar_index_every_rows: int = 10_000
    """Fold new rows into the scalar indexes once this many are not indexed."""

    name = "lance"

    def __post_init__(self) -> None:
        check_installed("lance")
        owner = type(self).__name__
        object.__setattr__(self, "uri", _uri_of(owner, self.uri))
        if self.storage_options is not None:
            object.__setattr__(
                self, "storage_options", {str(k): str(v) for k, v in self.storage_options.items()}
            )
        if self.schema is not None and not isinstance(self.schema, pa.Schema):
            raise ConfigError(f"{owner}.schema must be a pyarrow.Schema; got {self.schema!r}")
        if self.scalar_indexes is not None:
            scalar = {str(k): str(v).upper() for k, v in dict(self.scalar_indexes).items()}
            if not scalar or any(v not in SCALAR_INDEX_TYPES for v in scalar.values()):
                message = (
                    f"{owner}.scalar_indexes must map columns to one of "
                    f"{list(SCALAR_INDEX_TYPES)}; got {self.scalar_indexes!r}"
                )
                raise ConfigError(message)
            object.__setattr__(self, "scalar_indexes", scalar)
        for name in ("index_every_rows", "rows_per_fragment", "scalar_index_every_rows"):
            check_count(owner, name, getattr(self, name))
        if self.index is not None:
            index = dict(self.index)
            kind = str(index.get("index_type", "")).upper()
            if not isinstance(index.get("column"), str) or kind not in INDEX_TYPES:
                message = (
                    f'{owner}.index must be {{"column": str, "index_type": one of '
                    f"{list(INDEX_TYPES)}, **parameters}}; got {self.index!r}"
                )
                raise ConfigError(message)
            object.__setattr__(self, "index", index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(str(self.uri))!r}{_describe(self.storage_options)})"

    @property
    def _uri(self) -> str:
        return str(self.uri)

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        return _Writer(self, self._staging(ctx), ctx.run, index)

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        staging = self._staging(ctx)
        for e, states in staging.backlog(ctx, epoch, precommits, self._log()):
            self._publish(ctx, e, states)
        staging.remove(lambda e: e <= epoch)
        if self.index is None and not self.scalar_indexes:
            return
        if not _exists(self._uri, self.storage_options):
            return  # only empty epochs so far (a followed folder before its first video)
        if self.index is not None:
            self._maintain_index()
        if self.scalar_indexes:
            self._maintain_scalar_indexes()

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:
        if last_epoch is None and _exists(self._uri, self.storage_options):
            dataset = self._dataset()
            found = _last_epoch_of(dataset, ctx.job_id)
            if found is not None:
                message = (
                    f"{self!r}: job {ctx.job_id!r} starts without a checkpoint, but the dataset "
                    f"already holds its epochs up to {found}: was the job id reused without its "
                    "checkpoints? Use a new job id (or restore the checkpoint directory)"
                )
                raise SinkError(message)
        super().recover(ctx, last_epoch)

    # -- internals -------------------------------------------------------------------------

    def _log(self) -> Any:
        return get_logger("tideflow.streaming.lance", sink=repr(self))

    def _staging(self, ctx: JobContext) -> EpochStaging:
        return EpochStaging.open(ctx, kind="lance", key=key_of(self._uri), owner=repr(self))

    def _dataset(self, **kw: Any) -> lance.LanceDataset:
        options = self.storage_options
        return _call(repr(self), "open", SinkError, _open_dataset, self._uri, options, **kw)

    def _publish(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        """Commit ``epoch``'s fragments as one version unless that was done already."""
        from lance import LanceOperation
        from lance.dataset import Transaction
        from lance.fragment import FragmentMetadata

        fragments = [f for state in precommits for f in _fragments_of(self, state, epoch)]
        if not fragments:
            return
        dataset = self._dataset()
        done = _last_epoch_of(dataset, ctx.job_id)
        if done is not None and done >= epoch:
            self._log().info("sink.already_committed", job_id=ctx.job_id, epoch=epoch)
            return
        metadata = [FragmentMetadata.from_json(json.dumps(f)) for f in fragments]
        transaction = Transaction(
            read_version=dataset.version,
            operation=LanceOperation.Append(metadata),
            transaction_properties={JOB_PROPERTY: ctx.job_id, EPOCH_PROPERTY: str(epoch)},
        )
        import lance

        committed = _call(
            repr(self),
            f"commit epoch {epoch} of job {ctx.job_id!r}",
            SinkError,
            lance.LanceDataset.commit,
            self._uri,
            transaction,
            storage_options=dict(self.storage_options or {}) or None,
        )
        rows = sum(m.physical_rows for m in metadata)
        self._log().info(
            "sink.committed", job_id=ctx.job_id, epoch=epoch, rows=rows, version=committed.version
        )

    def remove_staged(self, ctx: JobContext, which: Callable[[int], bool]) -> int:
        """Delete the uncommitted fragments and staging of the epochs ``which`` selects."""
        staging = self._staging(ctx)
        epochs = [e for e in staging.epochs() if which(e)]
        files = [
            d["path"]
            for e in epochs
            for state in staging.manifests(e, partial=True)
            for f in _fragments_of(self, state, e)
            for d in f.get("files", [])
            if isinstance(d, dict) and isinstance(d.get("path"), str)
        ]
        filesystem, root = self._filesystem()
        if filesystem is None:
            if files:
                self._log().warning("sink.orphan_fragments_left", files=len(files))
        else:
            for path in files:
                with_root = f"{root}/data/{path}"
                try:
                    filesystem.delete_file(with_root)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    self._log().warning(
                        "sink.orphan_fragment_left", path=path, error=redact(str(e))
                    )
        return len(staging.remove(lambda e: e in epochs))

    def _filesystem(self) -> tuple[pafs.FileSystem | None, str]:
        """The dataset's directory through pyarrow, for local paths and S3."""
        uri = self._uri
        if "://" not in uri or uri.startswith("file://"):
            return pafs.LocalFileSystem(), uri.removeprefix("file://").rstrip("/")
        if not uri.startswith("s3://"):
            return None, ""
        options = {
            k.lower().removeprefix("aws_"): v for k, v in (self.storage_options or {}).items()
        }
        endpoint = options.get("endpoint") or options.get("endpoint_url")
        kwargs: dict[str, Any] = {
            "access_key": options.get("access_key_id"),
            "secret_key": options.get("secret_access_key"),
            "session_token": options.get("session_token"),
            "region": options.get("region"),
        }
        if endpoint:
            scheme, _, host = endpoint.rpartition("://")
            kwargs.update(endpoint_override=host, scheme=scheme or "https")
        filesystem = pafs.S3FileSystem(**{k: v for k, v in kwargs.items() if v is not None})
        return filesystem, uri.removeprefix("s3://").rstrip("/")

    def _maintain_index(self) -> None:
        assert self.index is not None
        params = dict(self.index)
        column = params.pop("column")
        kind = str(params.pop("index_type")).upper()
        name = params.pop("name", None) or f"{column}_idx"
        problem = None
        try:
            dataset = self._dataset()
            if name not in {i.name for i in dataset.describe_indices()}:
                if dataset.count_rows() >= self.index_every_rows:
                    dataset.create_index(column, index_type=kind, name=name, **params)
                    self._log().info("sink.index_built", index=name, rows=dataset.count_rows())
            else:
                behind = dataset.stats.index_stats(name)["num_unindexed_rows"]
                if behind >= self.index_every_rows:
                    dataset.optimize.optimize_indices(index_names=[name])
                    self._log().info("sink.index_updated", index=name, added=behind)
        except Exception as e:  # the data is committed; a later commit tries again
            problem = describe_error(e)
        if problem is not None:
            self._log().error("sink.index_failed", index=name, error=problem)

    def _maintain_scalar_indexes(self) -> None:
        assert self.scalar_indexes is not None
        problem, name = None, ""
        try:
            dataset = self._dataset()
            if dataset.count_rows() == 0:
                return
            existing = {i.name for i in dataset.describe_indices()}
            behind_names = []
            for column, kind in self.scalar_indexes.items():
                name = f"{column}_idx"
                if name not in existing:
                    dataset.create_scalar_index(column, index_type=kind, name=name)  # type: ignore[arg-type]
                    self._log().info("sink.index_built", index=name, rows=dataset.count_rows())
                elif (
                    dataset.stats.index_stats(name)["num_unindexed_rows"]
                    >= self.scalar_index_every_rows
                ):
                    behind_names.append(name)
            if behind_names:
                name = ", ".join(behind_names)
                dataset.optimize.optimize_indices(index_names=behind_names)
                self._log().info("sink.index_updated", index=name)
        except Exception as e:  # the data is committed; a later commit tries again
            problem = describe_error(e)
        if problem is not None:
            self._log().error("sink.index_failed", index=name, error=problem)


def _fragments_of(sink: LanceSink, state: JSON, epoch: int) -> list[dict[str, Any]]:
    fragments = state.get("fragments") if isinstance(state, dict) else None
    if not isinstance(fragments, list) or not all(isinstance(f, dict) for f in fragments):
        message = (
            f'{sink!r}: epoch {epoch}: expected a pre-commit {{"fragments": [...]}}, got {state!r}'
        )
        raise SinkError(message)
    return fragments


def _last_epoch_of(dataset: lance.LanceDataset, job_id: str) -> int | None:
    """The latest epoch of ``job_id`` committed to ``dataset`` (None: none), walking back
    from the latest version to this job's last commit (epochs are committed in order)."""
    for version in range(dataset.latest_version, 0, -1):
        try:
            transaction = dataset.read_transaction(version)
        except (OSError, ValueError):
            return None  # cleaned-up history: nothing older can be read
        properties = getattr(transaction, "transaction_properties", None) or {}
        if properties.get(JOB_PROPERTY) == job_id:
            return int(properties.get(EPOCH_PROPERTY, "-1"))
    return None


class _Writer(SinkWriter):
    """Writes an epoch's rows as uncommitted fragments, flushed every ``rows_per_fragment``."""

    def __init__(self, sink: LanceSink, staging: EpochStaging, run: int, index: int) -> None:
        self._sink = sink
        self._owner = repr(sink)
        self._staging = staging
        self._name = f"r{run:03d}-w{index:03d}"
        self._dataset: lance.LanceDataset | None = None
        self._buffers: dict[int, list[pa.Table]] = {}
        self._fragments: dict[int, list[dict[str, Any]]] = {}

    def write(self, epoch: int, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        dataset = self._open(table.schema)
        fitted = _fit(self._owner, table, dataset.schema)
        buffer = self._buffers.setdefault(epoch, [])
        buffer.append(fitted)
        if sum(t.num_rows for t in buffer) >= self._sink.rows_per_fragment:
            self._flush(epoch)

    def precommit(self, epoch: int) -> JSON:
        self._flush(epoch)
        fragments = self._fragments.pop(epoch, [])
        state = {"fragments": fragments}
        if fragments:
            self._staging.write_manifest(epoch, self._name, state)
        return state

    def close(self) -> None:
        self._buffers.clear()

    def _open(self, schema: pa.Schema) -> lance.LanceDataset:
        if self._dataset is None:
            sink = self._sink
            if not _exists(sink._uri, sink.storage_options):
                import lance

                empty = (sink.schema or schema).empty_table()
                try:  # an empty version 1: nothing becomes visible before a commit
                    lance.write_dataset(
                        empty,
                        sink._uri,
                        mode="create",
                        storage_options=dict(sink.storage_options or {}) or None,
                    )
                except (OSError, ValueError) as e:
                    if not _exists(sink._uri, sink.storage_options):  # not a creation race
                        message = f"{self._owner}: cannot create the dataset: {redact(str(e))}"
                        raise SinkError(message) from None
            self._dataset = sink._dataset()
        return self._dataset

    def _flush(self, epoch: int) -> None:
        import lance

        buffer = self._buffers.pop(epoch, [])
        if not buffer:
            return
        self._staging.create_epoch_dir(epoch)  # so that recover finds epochs being written
        data = pa.concat_tables(buffer)
        written = _call(
            self._owner,
            "write fragments",
            SinkError,
            lance.fragment.write_fragments,
            data,
            self._dataset,
            max_rows_per_file=max(self._sink.rows_per_fragment, data.num_rows),
        )
        self._fragments.setdefault(epoch, []).extend(f.to_json() for f in written)
        # The fragment files exist now: record them at once, so that recover finds them
        # even if this writer dies before its pre-commit.
        self._staging.write_manifest(
            epoch, f"{self._name}-partial", {"fragments": self._fragments[epoch]}
        )


def _fit(owner: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the dataset's columns, in its order and types, or a clear SinkError."""
    expected = ", ".join(f"{f.name}: {f.type}" for f in schema)
    missing = [f.name for f in schema if f.name not in table.column_names]
    extra = [n for n in table.column_names if schema.get_field_index(n) < 0]
    problem = None
    if missing or extra:
        problem = f"missing columns {missing}, unknown columns {extra}"
    else:
        try:
            return table.select(schema.names).cast(schema)
        except (pa.ArrowException, ValueError) as e:
            seen = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
            problem = f"got ({seen}): {e}"
    raise SinkError(f"{owner}: rows do not fit the dataset's schema ({expected}): {problem}")


# -- source ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class LanceSource(Source):
    """The rows of one version of a Lance dataset, split by fragments (bounded).

    ``LanceSource(uri, version=None, columns=None, fragments_per_split=1,
    storage_options=None)``; see the module docs for states and guarantees.
    """

    uri: str | os.PathLike[str]
    """The dataset: a local path or ``s3://bucket/path.lance`` (with ``storage_options``)."""
    _: KW_ONLY
    version: int | str | None = None
    """A version number or tag (None: the latest at the job's first discovery, pinned)."""
    columns: list[str] | None = None
    """Read only these columns (None: all)."""
    fragments_per_split: int = 1
    """Fragments per split (smaller splits resume more finely and read in parallel)."""
    storage_options: Mapping[str, str] | None = field(default=None)
    """Lance's object-store options (see :class:`LanceSink`)."""

    name = "lance"

    def __post_init__(self) -> None:
        check_installed("lance")
        owner = type(self).__name__
        object.__setattr__(self, "uri", _uri_of(owner, self.uri))
        check_count(owner, "fragments_per_split", self.fragments_per_split)
        check_columns(owner, self.columns)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(str(self.uri))!r}{_describe(self.storage_options)})"

    @property
    def bounded(self) -> bool:
        return True

    def discover(self, ctx: JobContext) -> Sequence[Split]:
        chosen = pinned(
            ctx, kind="lance", key=key_of(str(self.uri)), owner=repr(self), choose=self._version
        )
        version = chosen["version"]
        dataset = self._dataset(version)
        ids = sorted(f.fragment_id for f in dataset.get_fragments())
        n = self.fragments_per_split
        splits = [
            Split(
                split_id=f"v{version}-{i:05d}",
                info={"version": version, "fragments": ids[s : s + n]},
            )
            for i, s in enumerate(range(0, len(ids), n))
        ]
        get_logger("tideflow.streaming.lance", source=repr(self)).info(
            "source.discovered", job_id=ctx.job_id, version=version, fragments=len(ids)
        )
        return splits

    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> PartsReader:
        info = split.info
        ids = info.get("fragments") if isinstance(info, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise SourceError(f"{self!r}: split {split.split_id!r} has no fragment list: {info!r}")
        dataset = self._dataset(info["version"])
        names = [f"fragment-{i}" for i in ids]
        at = parse_position(repr(self), split.split_id, names, state)
        columns = list(self.columns) if self.columns is not None else None

        def open_part(index: int, skip: int) -> Iterator[pa.RecordBatch]:
            fragment = dataset.get_fragment(ids[index])
            if fragment is None:
                raise SourceError(
                    f"{self!r}: version {info['version']} has no fragment {ids[index]}"
                )
            return iter(fragment.to_batches(columns=columns, offset=skip or None))

        return PartsReader(repr(self), names, open_part, at)

    def _version(self) -> JSON:
        dataset = self._dataset(self.version)
        return {"version": dataset.version}

    def _dataset(self, version: int | str | None) -> lance.LanceDataset:
        kw = {"version": version} if version is not None else {}
        options = self.storage_options
        return _call(repr(self), "open", SourceError, _open_dataset, str(self.uri), options, **kw)
