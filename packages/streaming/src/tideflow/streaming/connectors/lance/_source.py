"""The Lance source: one version of a dataset, split by fragments, resumable by row."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.streaming.connectors._base import JSON, JobContext, Source, Split
from tideflow.streaming.connectors._deps import check_installed
from tideflow.streaming.connectors._kit import check_columns, check_count, parse_position
from tideflow.streaming.connectors._tables import PartsReader, key_of, pinned
from tideflow.streaming.connectors.lance._dataset import (
    describe_options,
    lance_call,
    open_dataset,
    uri_of,
)
from tideflow.streaming.errors import SourceError

if TYPE_CHECKING:
    import lance

__all__ = ["LanceSource"]


@dataclass(frozen=True, repr=False)
class LanceSource(Source):
    """The rows of one version of a Lance dataset, split by fragments (bounded).

    ``LanceSource(uri, version=None, columns=None, fragments_per_split=1,
    storage_options=None)``; see the package docs for states and guarantees.
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
        object.__setattr__(self, "uri", uri_of(owner, self.uri))
        check_count(owner, "fragments_per_split", self.fragments_per_split)
        check_columns(owner, self.columns)

    def __repr__(self) -> str:
        options = describe_options(self.storage_options)
        return f"{type(self).__name__}({redact(str(self.uri))!r}{options})"

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
        return lance_call(
            repr(self), "open", SourceError, open_dataset, str(self.uri), options, **kw
        )
