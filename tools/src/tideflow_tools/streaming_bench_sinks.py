"""A Parquet sink whose commit is slow, for the slow-commit section of the streaming bench.

Issue 18 asks that a sink whose commit takes seconds does not stall the pipeline: the engine
commits on a committer thread off its loop. :class:`SlowCommitParquetSink` is the bench's
:class:`~tideflow.streaming.connectors.ParquetSink` with a sleep before each commit, so the
two runs differ only in how long a commit takes. It lives in its own module (not in the
bench's child, which runs as ``__main__``) so that Ray workers can import it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tideflow.streaming.connectors import JobContext, ParquetSink

__all__ = ["SlowCommitParquetSink"]


@dataclass(frozen=True, kw_only=True, repr=False)
class SlowCommitParquetSink(ParquetSink):
    """``ParquetSink`` that sleeps ``commit_delay_s`` before each epoch's commit."""

    commit_delay_s: float = 2.0
    """Seconds each commit sleeps before moving the epoch's files."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.commit_delay_s < 0:
            delay = self.commit_delay_s
            raise ValueError(f"SlowCommitParquetSink.commit_delay_s must be >= 0; got {delay}")

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[Any]) -> None:
        time.sleep(self.commit_delay_s)
        super().commit(ctx, epoch, precommits)
