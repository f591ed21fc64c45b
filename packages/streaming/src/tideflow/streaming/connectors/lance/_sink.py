"""The Lance sink: each epoch appended as one version, exactly once, and the indexes kept
up in commits (see the package docs); writing fragments is ``_writer``'s."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.streaming.connectors._base import JSON, JobContext, SinkWriter
from tideflow.streaming.connectors._deps import check_installed
from tideflow.streaming.connectors._kit import RemovesStaged, check_count, describe_error
from tideflow.streaming.connectors._tables import EpochStaging, key_of
from tideflow.streaming.connectors.lance._dataset import (
    dataset_exists,
    describe_options,
    lance_call,
    open_dataset,
    uri_of,
)
from tideflow.streaming.connectors.lance._writer import LanceWriter, fragments_of
from tideflow.streaming.errors import ConfigError, SinkError

if TYPE_CHECKING:
    import lance

__all__ = ["LanceSink"]

JOB_PROPERTY = "tideflow.job_id"
EPOCH_PROPERTY = "tideflow.epoch"
INDEX_TYPES = ("IVF_PQ", "IVF_HNSW_SQ", "IVF_HNSW_PQ", "IVF_SQ", "IVF_FLAT", "IVF_RQ")
SCALAR_INDEX_TYPES = ("INVERTED", "BTREE", "BITMAP", "LABEL_LIST", "NGRAM")


@dataclass(frozen=True, repr=False)
class LanceSink(RemovesStaged):
    """Appends each epoch as one Lance version, exactly once (see the package docs).

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
        object.__setattr__(self, "uri", uri_of(owner, self.uri))
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
        options = describe_options(self.storage_options)
        return f"{type(self).__name__}({redact(str(self.uri))!r}{options})"

    @property
    def _uri(self) -> str:
        return str(self.uri)

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        return LanceWriter(self, self._staging(ctx), ctx.run, index)

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        staging = self._staging(ctx)
        for e, states in staging.backlog(ctx, epoch, precommits, self._log()):
            self._publish(ctx, e, states)
        staging.remove(lambda e: e <= epoch)
        if self.index is None and not self.scalar_indexes:
            return
        if not dataset_exists(self._uri, self.storage_options):
            return  # only empty epochs so far (a followed folder before its first video)
        if self.index is not None:
            self._maintain_index()
        if self.scalar_indexes:
            self._maintain_scalar_indexes()

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:
        if last_epoch is None and dataset_exists(self._uri, self.storage_options):
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
        return lance_call(repr(self), "open", SinkError, open_dataset, self._uri, options, **kw)

    def _publish(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        """Commit ``epoch``'s fragments as one version unless that was done already."""
        from lance import LanceOperation
        from lance.dataset import Transaction
        from lance.fragment import FragmentMetadata

        fragments = [f for state in precommits for f in fragments_of(self, state, epoch)]
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

        committed = lance_call(
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
            for f in fragments_of(self, state, e)
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
