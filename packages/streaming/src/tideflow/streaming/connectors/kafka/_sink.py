"""The Kafka sink: messages are staged per epoch and produced once the epoch is durable.

A writer encodes an epoch's rows into messages (key, value, partition) and, at pre-commit,
stages them as one Arrow IPC file under the job's directory::

    <job uri>/kafka_sink/<topic>/epoch-000042-r002-w003.arrow

:meth:`KafkaSink.commit` (on the driver, once the checkpoint holding the pre-commits is
durable) produces the staged messages of the epoch, each with the header
``tideflow-id: <job_id>:<epoch>:<writer>:<seq>`` (the dedupe key: the same message carries
the same key whenever it is produced again), records the epoch as done, and deletes the
staged files. Output therefore appears only for checkpointed epochs.

"Done" is a consumer-group offset: the group ``tideflow-sink-<job_id>`` commits offset
``epoch + 1`` on partition 0 of the output topic (nobody consumes with that group; it is a
marker kept by Kafka). A commit that finds its epoch marked does nothing (the replay of the
restored checkpoint's epoch); one that finds a *later* epoch marked fails with
:class:`SinkError` (a job id reused without its checkpoints), rather than skip output.

- **Transactional** (brokers that support transactions): one transaction per epoch, with
  ``transactional_id = tideflow-<job_id>-<topic>``; the marker is committed *inside* the
  transaction (``send_offsets_to_transaction``), so the epoch's messages and its marker
  become visible together: exactly once for ``read_committed`` consumers, even if the
  driver dies during a commit.
- **At least once with a dedupe key** (brokers without transactions, such as the local
  tansu broker whose ``InitProducerId`` fails): messages are produced and flushed, then the
  marker is committed. A crash between the two produces the epoch again on the rerun, with
  the same ``tideflow-id`` headers: consumers that dedupe on that header see every message
  once.

``transactional="auto"`` (the default) tries a transactional producer once per process and
falls back to the second mode when the broker refuses it (logged as
``kafka.sink.not_transactional``).
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.fs as pafs

from tideflow.core.observability import get_logger
from tideflow.core.uri import open_uri, redact
from tideflow.streaming.connectors._base import JSON, JobContext, SinkWriter
from tideflow.streaming.connectors._deps import check_installed
from tideflow.streaming.connectors._kit import RemovesStaged, StagedName, guarded
from tideflow.streaming.connectors.kafka._client import (
    ClientCache,
    cache_key,
    check_seconds,
    describe_options,
    driver_call,
    error_text,
    import_aiokafka,
    normalize_endpoint,
    safe_name,
    same_endpoint,
    start_for,
)
from tideflow.streaming.connectors.kafka._codec import check_format, encode_rows
from tideflow.streaming.errors import ConfigError, SinkError

__all__ = ["DEDUPE_HEADER", "KafkaSink"]

DEDUPE_HEADER = "tideflow-id"
"""The header that carries a message's dedupe key ``<job_id>:<epoch>:<writer>:<seq>``."""

_EXTENSION = ".arrow"
_SCHEMA = pa.schema([("key", pa.binary()), ("value", pa.binary()), ("partition", pa.int32())])
_DRIVER = ClientCache()
_MODES: dict[Any, bool] = {}  # per process: does this broker give transactions?


@dataclass(frozen=True, kw_only=True, repr=False)
class KafkaSink(RemovesStaged):
    """Writes rows as messages to one topic, per checkpointed epoch; see the module docs."""

    topic: str
    """The output topic (it must exist, or the broker must create topics on first use)."""
    bootstrap_servers: str | Sequence[str] = "localhost:9092"
    """``host:port`` of brokers to bootstrap from (text, comma-separated text or a list)."""
    transactional: bool | Literal["auto"] = "auto"
    """``True``: one transaction per epoch (fails if the broker has no transactions);
    ``False``: at least once with the dedupe header; ``"auto"``: transactions if the broker
    supports them."""
    value_format: Literal["bytes", "json", "arrow"] | Callable[[dict[str, Any]], bytes] = "json"
    """``json``: each row (less key and partition columns) as a JSON object, or the
    ``value_column`` as JSON; ``bytes``: the ``value_column`` (default ``value``) as is
    (binary or UTF-8 text); ``arrow``: each row as a one-row Arrow IPC stream; a callable:
    ``row dict -> bytes``."""
    value_column: str | None = None
    """The column that is the message value (default: the whole row; ``value`` for bytes)."""
    key_column: str | None = "key"
    """The column used as the message key when present (text is UTF-8 encoded)."""
    partition_column: str | None = None
    """A column with each message's partition (default: the producer's partitioner)."""
    client_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for aiokafka's producer (SASL, SSL files, acks, compression, …)."""
    request_timeout_s: float = 120.0
    """Limit of one commit (producing an epoch) on the driver."""

    name = "kafka"
    events = "kafka.sink"

    def __post_init__(self) -> None:
        check_installed("aiokafka")
        owner = type(self).__name__
        if not isinstance(self.topic, str) or not self.topic:
            raise ConfigError(f"{owner}.topic must be a non-empty topic name; got {self.topic!r}")
        normalize_endpoint(owner, self)
        if self.transactional not in (True, False, "auto"):
            message = (
                f'{owner}.transactional must be True, False or "auto"; got {self.transactional!r}'
            )
            raise ConfigError(message)
        check_format(owner, self.value_format)
        for name in ("value_column", "key_column", "partition_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{owner}.{name} must be None or a column name; got {value!r}")
        check_seconds(owner, self, "request_timeout_s")

    def __repr__(self) -> str:
        return (
            f"KafkaSink(topic={self.topic!r}, bootstrap_servers={self.bootstrap_servers!r}"
            f"{describe_options(self.client_options)})"
        )

    def marker_group(self, ctx: JobContext) -> str:
        """The consumer group whose offset on partition 0 marks the last produced epoch."""
        return f"tideflow-sink-{ctx.job_id}"

    def transactions(self) -> bool:
        """Whether commits use transactions (``"auto"``: asks the broker, once per process)."""
        if self.transactional != "auto":
            return bool(self.transactional)
        key = cache_key("mode", self)
        if key not in _MODES:
            _MODES[key] = self._probe_transactions()
        return _MODES[key]

    def close(self) -> None:
        """Close the driver-side clients of this sink's servers and options (the producers
        and the marker's consumer that commits use). The engine calls it when a job ends;
        idempotent; the sink stays usable (a later commit connects again)."""
        _DRIVER.close_matching(lambda key: same_endpoint(key, self))

    # -- the Sink contract -----------------------------------------------------------------

    def writer(self, ctx: JobContext, index: int) -> SinkWriter:
        filesystem, staging = self._staging(ctx)
        self._call(f"create {staging}", filesystem.create_dir, staging, recursive=True)
        return _KafkaWriter(self, filesystem, staging, ctx.run, index)

    def commit(self, ctx: JobContext, epoch: int, precommits: Sequence[JSON]) -> None:
        filesystem, staging = self._staging(ctx)
        files = self._files_of(precommits, epoch)
        if not files:
            return
        done = self._done(ctx)
        if done == epoch + 1:  # a replay after a crash: produced already
            self._delete(filesystem, [f"{staging}/{f.name}" for f in files])
            self._log().info("kafka.sink.already_committed", job_id=ctx.job_id, epoch=epoch)
            return
        if done > epoch + 1:
            message = (
                f"{self!r}: cannot commit epoch {epoch} of job {ctx.job_id!r}: the topic's "
                f"marker (group {self.marker_group(ctx)!r}) says epoch {done - 1} was "
                "produced already; was the job id reused without its checkpoints?"
            )
            raise SinkError(message)
        messages = []
        for staged in files:
            path = f"{staging}/{staged.name}"
            try:
                with filesystem.open_input_file(path) as handle:
                    table = pa.ipc.open_file(handle).read_all()
            except FileNotFoundError:
                message = (
                    f"{self!r}: cannot commit epoch {epoch} of job {ctx.job_id!r}: its staged "
                    f"file {redact(path)} is gone and the epoch is not marked as produced"
                )
                raise SinkError(message) from None
            for seq, row in enumerate(table.to_pylist()):
                dedupe = f"{ctx.job_id}:{epoch}:{staged.writer}:{seq}".encode()
                messages.append((row["key"], row["value"], row["partition"], dedupe))
        transactional = self.transactions()
        self._produce(ctx, epoch, messages, transactional)
        self._delete(filesystem, [f"{staging}/{f.name}" for f in files])
        self._log().info(
            "kafka.sink.committed",
            job_id=ctx.job_id,
            epoch=epoch,
            messages=len(messages),
            transactional=transactional,
        )

    # -- internals -------------------------------------------------------------------------

    def _log(self) -> Any:
        return get_logger("tideflow.streaming.kafka", sink=repr(self))

    def _staging(self, ctx: JobContext) -> tuple[pafs.FileSystem, str]:
        if not ctx.job_uri:
            raise SinkError(f"{self!r}: the job has no directory to stage messages in")
        filesystem, root = open_uri(ctx.job_uri, owner=type(self).__name__)
        return filesystem, f"{root}/kafka_sink/{safe_name(self.topic)}"

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return guarded(repr(self), what, SinkError, fn, *args, **kwargs)

    def _files_of(self, precommits: Sequence[JSON], epoch: int) -> list[StagedName]:
        files = []
        for state in precommits:
            name = state.get("file", "") if isinstance(state, dict) else ""
            parsed = _parse(name) if isinstance(name, str) and name else None
            if state is None or (isinstance(state, dict) and state.get("file") is None):
                continue
            if parsed is None or parsed.epoch != epoch:
                message = (
                    f'{self!r}: epoch {epoch}: expected a pre-commit {{"file": ...}}, got {state!r}'
                )
                raise SinkError(message)
            files.append(parsed)
        return files

    def _delete(self, filesystem: pafs.FileSystem, paths: list[str]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                filesystem.delete_file(path)

    def remove_staged(self, ctx: JobContext, which: Callable[[int], bool]) -> int:
        filesystem, staging = self._staging(ctx)
        selector = pafs.FileSelector(staging, allow_not_found=True)
        removed = 0
        for info in self._call("list staged messages", filesystem.get_file_info, selector):
            parsed = _parse(posixpath.basename(info.path))
            if parsed is not None and which(parsed.epoch):
                self._call(f"delete {info.path}", filesystem.delete_file, info.path)
                removed += 1
        return removed

    def _driver(self, key: Any, make: Any, use: Any, what: str) -> Any:
        return driver_call(_DRIVER, self, key, make, use, what=what, error=SinkError)

    def _done(self, ctx: JobContext) -> int:
        """The marker: 1 + the last epoch produced for this job (0 when none)."""
        aiokafka = import_aiokafka()
        tp = aiokafka.TopicPartition(self.topic, 0)
        group = self.marker_group(ctx)

        async def make() -> Any:
            return await start_for(self, aiokafka.AIOKafkaConsumer, group_id=group)

        async def committed(consumer: Any) -> int:
            consumer.assign([tp])
            return int(await consumer.committed(tp) or 0)

        key = cache_key("marker", self, group)
        done: int = self._driver(key, make, committed, f"read the marker of group {group!r}")
        return done

    def _produce(
        self, ctx: JobContext, epoch: int, messages: list[tuple[Any, ...]], transactional: bool
    ) -> None:
        aiokafka = import_aiokafka()
        tp = aiokafka.TopicPartition(self.topic, 0)
        group = self.marker_group(ctx)
        topic = self.topic

        async def send_all(producer: Any) -> None:
            futures = [
                await producer.send(
                    topic, value, key=key, partition=partition, headers=[(DEDUPE_HEADER, dedupe)]
                )
                for key, value, partition, dedupe in messages
            ]
            for future in futures:
                await future

        if transactional:
            tx_id = f"tideflow-{ctx.job_id}-{self.topic}"

            async def make_tx() -> Any:
                return await start_for(self, aiokafka.AIOKafkaProducer, transactional_id=tx_id)

            async def in_transaction(producer: Any) -> None:
                async with producer.transaction():
                    await send_all(producer)
                    await producer.send_offsets_to_transaction({tp: epoch + 1}, group)

            tx_key = cache_key("tx", self, tx_id)
            self._driver(tx_key, make_tx, in_transaction, f"produce epoch {epoch} in a transaction")
            return

        async def make() -> Any:
            return await start_for(self, aiokafka.AIOKafkaProducer)

        key = cache_key("plain", self)
        self._driver(key, make, send_all, f"produce epoch {epoch}")

        async def make_marker() -> Any:
            return await start_for(self, aiokafka.AIOKafkaConsumer, group_id=group)

        async def mark(consumer: Any) -> None:
            consumer.assign([tp])
            await consumer.commit({tp: epoch + 1})

        marker_key = cache_key("marker", self, group)
        self._driver(marker_key, make_marker, mark, f"mark epoch {epoch} as produced")

    def _probe_transactions(self) -> bool:
        aiokafka = import_aiokafka()

        async def make() -> Any:
            tx_id = f"tideflow-probe-{id(self)}"
            return await start_for(self, aiokafka.AIOKafkaProducer, transactional_id=tx_id)

        async def nothing(producer: Any) -> None:
            return None

        key = cache_key("probe", self)
        try:
            _DRIVER.call(key, make, nothing, self.request_timeout_s)
        except Exception as error:
            reason = error_text(error, self.client_options)
            self._log().info("kafka.sink.not_transactional", reason=reason)
            return False
        _DRIVER.drop(key)
        return True


@dataclass(eq=False)
class _KafkaWriter(SinkWriter):
    sink: KafkaSink
    filesystem: pafs.FileSystem
    staging: str
    run: int
    index: int
    epochs: dict[int, list[pa.Table]] = field(default_factory=dict)

    def write(self, epoch: int, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        sink = self.sink
        try:
            keys, values, partitions = encode_rows(
                table,
                value_format=sink.value_format,
                value_column=sink.value_column,
                key_column=sink.key_column,
                partition_column=sink.partition_column,
            )
        except (KeyError, TypeError, ValueError, pa.ArrowException) as error:
            message = f"{sink!r}: cannot encode rows as messages: {type(error).__name__}: {error}"
            raise SinkError(message) from error
        encoded = pa.table(
            {
                "key": pa.array(keys, pa.binary()),
                "value": pa.array(values, pa.binary()),
                "partition": pa.array(partitions, pa.int32()),
            },
            schema=_SCHEMA,
        )
        self.epochs.setdefault(epoch, []).append(encoded)

    def precommit(self, epoch: int) -> JSON:
        tables = self.epochs.pop(epoch, [])
        if not tables:
            return {"file": None, "messages": 0}
        table = pa.concat_tables(tables)
        name = StagedName(epoch, self.run, self.index, ext=_EXTENSION).name
        path = f"{self.staging}/{name}"

        def stage() -> None:
            with (
                self.filesystem.open_output_stream(path) as out,
                pa.ipc.new_file(out, _SCHEMA) as w,
            ):
                w.write_table(table)

        self.sink._call(f"stage {path}", stage)
        return {"file": name, "messages": table.num_rows}


def _parse(name: str) -> StagedName | None:
    """A staged message file's name (``epoch-…-r…-w….arrow``), parsed; None if it is not one."""
    parsed = StagedName.parse(name)
    if parsed is None or parsed.seq is not None or parsed.ext != _EXTENSION:
        return None
    return parsed
