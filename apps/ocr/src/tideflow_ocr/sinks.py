"""Where results go: the outputs (Iceberg, JSON lines) for videos read, the dead-letter
output for videos that failed, and the failure callback.

:class:`ResultSink` is one two-phase sink over several: each epoch's ``ok`` videos are staged
in every output, its ``failed`` videos in the dead-letter JSON lines; all are published when
the epoch's checkpoint is durable (each inner sink is idempotent by job and epoch, so a
replay after a crash writes nothing twice). :class:`DeadLetters` is given to the engine as
its dead-letter output: rows the engine itself gave up on (a video that could not be
probed, a message that names no video, a shard whose actors kept dying) are written to the
same folder in the same shape, and reported to ``on_failure`` once committed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tideflow.streaming.connectors import JSON, JobContext, JSONLSink, Sink, SinkWriter

__all__ = ["FAILURE_SCHEMA", "DeadLetters", "JSONLFileSink", "ResultSink", "VideoFailure"]

FAILURE_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("record", pa.string()),
    ]
)
"""A dead letter of the OCR app: which video (when known), the stage that gave up, why."""


@dataclass(frozen=True)
class VideoFailure:
    """A video (or a message) that could not be OCR'd, as given to ``on_failure``."""

    video_id: str | None
    """The video's id; None when the input named no video (a bad Kafka message)."""
    uri: str | None
    """Its URI (credentials masked)."""
    stage: str
    """Where it failed: ``probe``, ``decode``, ``ocr``, ``message``, or an engine stage."""
    reason: str
    """The error."""


def _failures_from_results(table: pa.Table) -> pa.Table:
    rows = [
        {
            "video_id": r["video_id"],
            "uri": r["uri"],
            "stage": (r["outcome"] or {}).get("stage") or "ocr",
            "error": r["error"],
            "record": json.dumps({"video_id": r["video_id"], "uri": r["uri"]}),
        }
        for r in table.select(["video_id", "uri", "error", "outcome"]).to_pylist()
    ]
    return pa.Table.from_pylist(rows, schema=FAILURE_SCHEMA)


def _failures_from_engine(table: pa.Table) -> pa.Table:
    """The engine's dead letters (stage, error, record JSON, epoch) in the app's shape."""
    rows = []
    for r in table.to_pylist():
        try:
            record = json.loads(r.get("record") or "null")
        except json.JSONDecodeError:
            record = None
        record = record if isinstance(record, dict) else {}
        stage = str(record.get("stage") or r.get("stage") or "engine")
        error = str(r.get("error") or "")
        rows.append(
            {
                "video_id": record.get("video_id"),
                "uri": record.get("uri"),
                "stage": stage,
                "error": error,
                "record": json.dumps(
                    {k: v for k, v in record.items() if k not in ("pixels", "frames", "lines")},
                    default=str,
                )[:4000],
            }
        )
    return pa.Table.from_pylist(rows, schema=FAILURE_SCHEMA)


def _summaries(table: pa.Table) -> list[dict[str, Any]]:
    return [
        {"video_id": r["video_id"], "uri": r["uri"], "stage": r["stage"], "reason": r["error"]}
        for r in table.select(["video_id", "uri", "stage", "error"]).to_pylist()
    ]


class ResultSink(Sink):
    """``ok`` videos to every output, ``failed`` ones to ``dead_letters`` (JSON lines)."""

    name = "ocr-results"

    def __init__(self, outputs: Sequence[Sink], dead_letters: str) -> None:
        self.outputs = tuple(outputs)
        self.dead_letters = dead_letters
        self._dead = JSONLSink(dead_letters)

    def __repr__(self) -> str:
        return f"ResultSink({list(self.outputs)!r}, dead_letters={self._dead!r})"

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        return _ResultWriter(
            [o.writer(ctx, index) for o in self.outputs], self._dead.writer(ctx, index)
        )

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        for k, output in enumerate(self.outputs):
            output.commit(ctx, epoch, [p["outputs"][k] for p in precommits])
        self._dead.commit(ctx, epoch, [p["dead"] for p in precommits])

    def abort(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        for k, output in enumerate(self.outputs):
            output.abort(ctx, epoch, [p["outputs"][k] for p in precommits])
        self._dead.abort(ctx, epoch, [p["dead"] for p in precommits])

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:
        for output in self.outputs:
            output.recover(ctx, last_epoch)
        self._dead.recover(ctx, last_epoch)


class _ResultWriter(SinkWriter):
    def __init__(self, outputs: list[SinkWriter], dead: SinkWriter) -> None:
        self._outputs = outputs
        self._dead = dead

    def write(self, epoch: int, table: pa.Table) -> None:
        ok = pc.equal(table.column("status"), "ok")
        good = table.filter(ok).drop_columns(["outcome"])
        bad = table.filter(pc.invert(ok))
        if good.num_rows:
            for output in self._outputs:
                output.write(epoch, good)
        if bad.num_rows:
            self._dead.write(epoch, _failures_from_results(bad))

    def precommit(self, epoch: int) -> JSON:
        return {
            "outputs": [o.precommit(epoch) for o in self._outputs],
            "dead": self._dead.precommit(epoch),
        }

    def close(self) -> None:
        for output in self._outputs:
            output.close()
        self._dead.close()


class DeadLetters(Sink):
    """The engine's dead-letter output for the app: JSON lines in the app's failure shape
    (in ``uri``, beside the failed videos), and ``on_failure`` once an epoch is committed
    (on the driver; at least once, again after a crash)."""

    name = "ocr-dead-letters"

    def __init__(
        self, uri: str, on_failure: Callable[[list[VideoFailure]], None] | None = None
    ) -> None:
        self.uri = uri
        self.on_failure = on_failure
        self._inner = JSONLSink(uri)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["on_failure"] = None  # a driver-side callback never travels to the actors
        return state

    def __repr__(self) -> str:
        return f"DeadLetters({self._inner!r})"

    @staticmethod
    def _ctx(ctx: JobContext) -> JobContext:
        # Its own file names beside the failed videos of ResultSink in the same folder.
        return dataclasses.replace(ctx, job_id=f"{ctx.job_id}-engine")

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        return _DeadWriter(self._inner.writer(self._ctx(ctx), index))

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        self._inner.commit(self._ctx(ctx), epoch, [p["inner"] for p in precommits])
        failures = [f for p in precommits for f in p["failures"]]
        if failures and self.on_failure is not None:
            self.on_failure([VideoFailure(**f) for f in failures])

    def abort(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        self._inner.abort(self._ctx(ctx), epoch, [p["inner"] for p in precommits])

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:
        self._inner.recover(self._ctx(ctx), last_epoch)


class _DeadWriter(SinkWriter):
    def __init__(self, inner: SinkWriter) -> None:
        self._inner = inner
        self._failures: dict[int, list[dict[str, Any]]] = {}

    def write(self, epoch: int, table: pa.Table) -> None:
        failures = _failures_from_engine(table)
        self._failures.setdefault(epoch, []).extend(_summaries(failures))
        self._inner.write(epoch, failures)

    def precommit(self, epoch: int) -> JSON:
        return {"inner": self._inner.precommit(epoch), "failures": self._failures.pop(epoch, [])}

    def close(self) -> None:
        self._inner.close()


class JSONLFileSink(Sink):
    """One JSON lines *file* (``results.jsonl``), exactly once.

    Each epoch is staged and committed as a part file by a :class:`JSONLSink` in the hidden
    folder ``.<name>.parts/`` beside the file; after every commit (and on recovery) the
    file is rebuilt from the committed parts and replaced atomically (write, then rename),
    so readers see whole epochs only and a replayed commit changes nothing.
    """

    name = "jsonl-file"

    def __init__(self, path: str) -> None:
        self.path = path
        base, _, query = path.partition("?")
        head, _, tail = base.rstrip("/").rpartition("/")
        self.parts = f"{head}/.{tail}.parts" + (f"?{query}" if query else "")
        self._inner = JSONLSink(self.parts)

    def __repr__(self) -> str:
        return f"JSONLFileSink({self.path.partition('?')[0]!r})"

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        return self._inner.writer(ctx, index)

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        self._inner.commit(ctx, epoch, precommits)
        self._rebuild()

    def abort(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        self._inner.abort(ctx, epoch, precommits)

    def recover(self, ctx: JobContext, last_epoch: int | None) -> None:
        self._inner.recover(ctx, last_epoch)
        self._rebuild()

    def _rebuild(self) -> None:
        from pyarrow import fs as pafs

        text = self.parts if "://" in self.parts else os.path.abspath(self.parts)
        filesystem, folder = pafs.FileSystem.from_uri(text)
        target = f"{folder.rsplit('/', 1)[0]}/{os.path.basename(self.path.partition('?')[0])}"
        selector = pafs.FileSelector(folder, allow_not_found=True)
        names = sorted(
            i.path
            for i in filesystem.get_file_info(selector)
            if i.type == pafs.FileType.File and i.path.endswith(".jsonl")
        )
        filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with filesystem.open_output_stream(f"{target}.tmp") as out:
            for name in names:
                with filesystem.open_input_stream(name) as part:
                    out.write(part.read())
        filesystem.move(f"{target}.tmp", target)
