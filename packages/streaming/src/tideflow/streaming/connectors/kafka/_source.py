"""The Kafka source: each partition a split, discovered on the driver; offsets committed to
the consumer group once a checkpoint is durable. Reading a partition is ``_reader``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tideflow.core.observability import get_logger
from tideflow.core.uri import open_uri, redact
from tideflow.streaming.connectors._base import JSON, JobContext, Source, Split, SplitReader
from tideflow.streaming.connectors._deps import check_installed
from tideflow.streaming.connectors.kafka._client import (
    ClientCache,
    cache_key,
    check_seconds,
    describe_options,
    driver_call,
    import_aiokafka,
    normalize_endpoint,
    redact_text,
    safe_name,
    same_endpoint,
    start_for,
)
from tideflow.streaming.connectors.kafka._codec import check_format
from tideflow.streaming.connectors.kafka._reader import (
    KafkaReader,
    Partition,
    end_offsets,
    is_offset,
)
from tideflow.streaming.errors import ConfigError, SourceError

__all__ = ["KafkaSource"]

_STARTS = ("earliest", "latest", "committed")
_DRIVER = ClientCache()
_KNOWN: dict[tuple[Any, ...], list[str]] = {}  # partitions last seen, per source and job


@dataclass(frozen=True, kw_only=True, repr=False)
class KafkaSource(Source):
    """The partitions of one or more Kafka topics; see the package docs."""

    topics: str | Sequence[str]
    """The topics to read (a name or a list). Each must exist when the job starts, unless
    ``allow_missing_topics``."""
    bootstrap_servers: str | Sequence[str] = "localhost:9092"
    """``host:port`` of brokers to bootstrap from (text, comma-separated text or a list)."""
    group_id: str | None = None
    """The consumer group whose offsets are committed after each checkpoint (and read by
    ``start="committed"``); default ``tideflow-<job_id>``."""
    start: Literal["earliest", "latest", "committed"] = "earliest"
    """Where a partition without checkpoint state starts: its first retained message, its
    end (only messages produced after the job started), or the group's committed offset
    (``earliest`` when it has none)."""
    until: Literal["now"] | Mapping[str, int] | None = None
    """``None``: unbounded. ``"now"``: read up to the end offsets at the job's first
    discovery (a rerun ends at the same place). A mapping ``{"topic:partition": end}``: read
    those partitions only, up to the (exclusive) end offsets."""
    value_format: Literal["bytes", "json", "arrow"] | Callable[[bytes], Any] = "bytes"
    """How a message's value becomes columns: ``bytes`` (a ``value`` column), ``json`` (an
    object's fields, or a ``value`` column for other JSON), ``arrow`` (an Arrow IPC stream's
    rows) or a callable ``bytes -> dict | value``. Decoded fields named like a coordinate
    column are renamed ``value.<name>``."""
    client_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for aiokafka's clients: ``security_protocol``, ``sasl_mechanism``,
    ``sasl_plain_username``, ``sasl_plain_password``, ``ssl_cafile``/``ssl_certfile``/
    ``ssl_keyfile``/``ssl_password`` (an SSL context is built from them), timeouts, …"""
    poll_timeout_s: float = 0.05
    """How long one read waits for messages before it returns ``None`` (nothing yet)."""
    connect_timeout_s: float = 60.0
    """A reader that could not connect for this long fails the job; once connected, broker
    stalls and outages are waited out (reads return nothing meanwhile)."""
    request_timeout_s: float = 30.0
    """Limit of one driver-side call (discovery, committing offsets)."""
    allow_missing_topics: bool = False
    """``False``: a topic that does not exist at the job's first discovery fails the job
    (:class:`ConfigError`), instead of a job that reads nothing and ends successfully.
    ``True``: the job starts without it; an unbounded source picks it up once it exists (a
    consumer started before its producer), a bounded one (``until="now"``) ends without it."""
    topic_priorities: Mapping[str, int] = field(default_factory=dict)
    """Reading priority per topic of ``topics`` (an int; others 0): when the engine cannot
    read every partition at once (its read budget is short), partitions of higher-priority
    topics are read first, e.g. ``{"alerts": 10}`` ahead of a backlog on ``"events"``.
    Partitions of one priority take turns; lower ones are read whenever the budget allows."""
    max_idle_wait_s: float = 0.5
    """The longest wait before polling a quiet partition again. After an empty poll the
    wait starts at ``poll_timeout_s`` and doubles with each empty poll in a row, up to this
    (a message resets it): a partition quiet for a while gets its next message up to this
    much later, and costs the broker and the I/O actor less meanwhile."""

    name = "kafka"
    offset_column = "offset"

    def __post_init__(self) -> None:
        check_installed("aiokafka")
        owner = type(self).__name__
        topics = (self.topics,) if isinstance(self.topics, str) else self.topics
        if (
            not isinstance(topics, Sequence)
            or not topics
            or not all(isinstance(t, str) and t for t in topics)
        ):
            message = (
                f"{owner}.topics must be a topic name or a non-empty list of them; "
                f"got {self.topics!r}"
            )
            raise ConfigError(message)
        object.__setattr__(self, "topics", tuple(topics))
        normalize_endpoint(owner, self)
        if self.start not in _STARTS:
            message = (
                f"{owner}.start must be one of {', '.join(map(repr, _STARTS))}; got {self.start!r}"
            )
            raise ConfigError(message)
        check_format(owner, self.value_format)
        until = self.until
        if until is not None and until != "now":
            if not isinstance(until, Mapping) or not all(
                isinstance(k, str) and _parse_split_id(k) is not None and is_offset(v)
                for k, v in until.items()
            ):
                message = (
                    f'{owner}.until must be None, "now" or a mapping {{"topic:partition": end '
                    f"offset (int ≥ 0)}}; got {until!r}"
                )
                raise ConfigError(message)
            others = sorted({_parse_split_id(k)[0] for k in until} - set(topics))  # type: ignore[index]
            if others:
                message = (
                    f"{owner}.until names partitions of {others}, which are not among its "
                    f"topics {list(topics)}; add them to topics= or drop them from until="
                )
                raise ConfigError(message)
            object.__setattr__(self, "until", dict(until))
        if self.group_id is not None and (not isinstance(self.group_id, str) or not self.group_id):
            raise ConfigError(
                f"{owner}.group_id must be None or a non-empty string; got {self.group_id!r}"
            )
        if not isinstance(self.allow_missing_topics, bool):
            message = (
                f"{owner}.allow_missing_topics must be True or False; "
                f"got {self.allow_missing_topics!r}"
            )
            raise ConfigError(message)
        check_seconds(
            owner,
            self,
            "poll_timeout_s",
            "connect_timeout_s",
            "request_timeout_s",
            "max_idle_wait_s",
        )
        object.__setattr__(self, "topic_priorities", self._checked_priorities(owner))

    def __repr__(self) -> str:
        return (
            f"KafkaSource(topics={list(self.topics)!r}, "
            f"bootstrap_servers={self.bootstrap_servers!r}{describe_options(self.client_options)})"
        )

    @property
    def bounded(self) -> bool:
        return self.until is not None

    def close(self) -> None:
        """Close the driver-side clients of this source's servers and options (discovery,
        end offsets, offset commits). The engine calls it when a job ends; idempotent; the
        source stays usable (a later call connects again). Readers in the engine's actors
        are closed with their splits, not here."""
        _DRIVER.close_matching(lambda key: same_endpoint(key, self))

    def _checked_priorities(self, owner: str) -> dict[str, int]:
        given = self.topic_priorities
        if not isinstance(given, Mapping):
            message = f"{owner}.topic_priorities must be a mapping {{topic: int}}; got {given!r}"
            raise ConfigError(message)
        unknown = sorted(repr(t) for t in given if t not in self.topics)
        if unknown:
            message = (
                f"{owner}.topic_priorities names {', '.join(unknown)}, not among its topics "
                f"{list(self.topics)!r}"
            )
            raise ConfigError(message)
        bad = {t: p for t, p in given.items() if isinstance(p, bool) or not isinstance(p, int)}
        if bad:
            message = f"{owner}.topic_priorities values must be ints; got {bad!r}"
            raise ConfigError(message)
        return dict(given)

    def group(self, ctx: JobContext) -> str:
        """The consumer group of the job ``ctx``."""
        return self.group_id or f"tideflow-{ctx.job_id}"

    # -- the Source contract ---------------------------------------------------------------

    def discover(self, ctx: JobContext) -> Sequence[Split]:
        ends: dict[str, int] | None
        if isinstance(self.until, dict):
            ends = self._ends_given()
            keys = sorted(ends, key=_split_order)
        elif self.until == "now":
            ends = self._ends_now(ctx)
            keys = sorted(ends, key=_split_order)  # the partitions of the first discovery
        else:
            ends, keys = None, self._rediscover(ctx)
        splits = []
        for key in keys:
            topic, partition = _parse_split_id(key)  # type: ignore[misc]
            end = None if ends is None else ends[key]
            info = Partition(topic, partition, end).to_json()
            priority = self.topic_priorities.get(topic, 0)
            splits.append(Split(split_id=key, info=info, priority=priority))
        return splits

    def open(self, split: Split, state: JSON | None, ctx: JobContext) -> SplitReader:
        import_aiokafka()  # here, not in the reader's retried connect: a missing one is final
        part = Partition.of(split.info)
        if part is None:
            message = f"{self!r}: split {split.split_id!r} has no topic/partition: {split.info!r}"
            raise SourceError(message)
        offset = state.get("offset") if isinstance(state, dict) else None
        if offset is not None and not is_offset(offset):
            message = (
                f"{self!r}: split {split.split_id!r}: expected a state "
                f'{{"offset": int}}, got {state!r}'
            )
            raise SourceError(message)
        return KafkaReader(self, part, offset=offset, group=self.group(ctx))

    def position_after(self, split: Split, offset: int) -> JSON:
        return {"offset": int(offset) + 1}

    def commit_positions(self, ctx: JobContext, positions: Mapping[str, JSON]) -> None:
        aiokafka = import_aiokafka()
        offsets = {}
        for split_id, state in positions.items():
            parsed = _parse_split_id(split_id)
            if parsed is not None and isinstance(state, dict) and is_offset(state.get("offset")):
                offsets[aiokafka.TopicPartition(*parsed)] = int(state["offset"])
        if not offsets:
            return
        group = self.group(ctx)

        async def make() -> Any:
            return await start_for(self, aiokafka.AIOKafkaConsumer, group_id=group)

        async def commit(consumer: Any) -> None:
            consumer.assign(list(offsets))
            await consumer.commit(offsets)

        key = cache_key("commit", self, group)
        self._driver_call(key, make, commit, f"commit offsets of group {group!r}")
        get_logger("tideflow.streaming.kafka", source=repr(self)).debug(
            "kafka.offsets_committed", group=group, partitions=len(offsets)
        )

    # -- internals -------------------------------------------------------------------------

    def _driver_call(self, key: Any, make: Any, use: Any, what: str) -> Any:
        return driver_call(_DRIVER, self, key, make, use, what=what, error=SourceError)

    def _rediscover(self, ctx: JobContext) -> list[str]:
        """The partitions now; while the broker does not answer, the last ones seen (the
        engine asks unbounded sources again every few seconds, and a stalled broker must
        not stop the job)."""
        known_key = (self.bootstrap_servers, self.topics, ctx.job_id)
        try:
            keys = self._partitions(first=known_key not in _KNOWN)
        except SourceError as error:
            known = _KNOWN.get(known_key)
            if known is None:
                raise
            get_logger("tideflow.streaming.kafka", source=repr(self)).warning(
                "kafka.rediscovery_failed", error=str(error)[:300], partitions=len(known)
            )
            return known
        _KNOWN[known_key] = keys
        return keys

    def _partitions(self, *, first: bool) -> list[str]:
        """The partitions of the topics that exist now. ``first``: the job's first look, where
        a missing topic is a :class:`ConfigError` unless ``allow_missing_topics``."""
        aiokafka = import_aiokafka()
        admin_cls = aiokafka.admin.AIOKafkaAdminClient

        async def make() -> Any:
            return await start_for(self, admin_cls)

        async def describe(admin: Any) -> list[Any]:
            # All topics: describing a missing topic by name may create it.
            return list(await admin.describe_topics(None))

        key = cache_key("admin", self)
        topics = self._driver_call(key, make, describe, "list partitions")
        found: list[str] = []
        for entry in topics:
            if entry.get("topic") in self.topics and not entry.get("error_code"):
                found += [f"{entry['topic']}:{p['partition']}" for p in entry["partitions"]]
        missing = set(self.topics) - {_parse_split_id(k)[0] for k in found}  # type: ignore[index]
        if missing and first and not self.allow_missing_topics:
            raise ConfigError(self._missing_message(sorted(missing)))
        if missing:
            get_logger("tideflow.streaming.kafka", source=repr(self)).info(
                "kafka.topics_missing", topics=sorted(missing)
            )
        return sorted(found, key=_split_order)

    def _missing_message(self, missing: list[str]) -> str:
        servers = redact(redact_text(str(self.bootstrap_servers), self.client_options))
        which, them = ("topic", "it") if len(missing) == 1 else ("topics", "them")
        return (
            f"KafkaSource: {which} {', '.join(map(repr, missing))} not found at {servers}: "
            f"create {them} before the job starts, or pass allow_missing_topics=True to start "
            f"without {them} (an unbounded source reads a topic once it exists)"
        )

    def _ends_given(self) -> dict[str, int]:
        """``until``'s partitions that exist: one that does not (a missing topic, or a
        partition number past the topic's) would never reach its end, so a bounded job
        would never end; it is a :class:`ConfigError` unless ``allow_missing_topics``
        (then the job ends without it, as with ``until="now"``)."""
        assert isinstance(self.until, dict)
        existing = set(self._partitions(first=True))
        absent = sorted(set(self.until) - existing, key=_split_order)
        if absent and not self.allow_missing_topics:
            servers = redact(redact_text(str(self.bootstrap_servers), self.client_options))
            message = (
                f"KafkaSource: until names partitions {absent} that do not exist at {servers} "
                f"(it has {sorted(existing, key=_split_order)}): a bounded job would wait for "
                "them forever; name existing partitions, or pass allow_missing_topics=True to "
                "end without them"
            )
            raise ConfigError(message)
        if absent:
            get_logger("tideflow.streaming.kafka", source=repr(self)).info(
                "kafka.partitions_missing", partitions=absent
            )
        return {k: end for k, end in self.until.items() if k in existing}

    def _ends_now(self, ctx: JobContext) -> dict[str, int]:
        """The end offsets of the job's first discovery (kept under the job directory)."""
        filesystem, root = open_uri(ctx.job_uri or ".", owner=type(self).__name__)
        path = f"{root}/kafka/{safe_name(','.join(self.topics))}-until.json"
        try:
            with filesystem.open_input_stream(path) as stream:
                kept: dict[str, int] = json.loads(stream.read())
            return kept
        except FileNotFoundError:
            pass
        keys = self._partitions(first=True)
        aiokafka = import_aiokafka()
        tps = [aiokafka.TopicPartition(*_parse_split_id(k)) for k in keys]  # type: ignore[misc]

        async def make() -> Any:
            return await start_for(self, aiokafka.AIOKafkaConsumer)

        async def ends(consumer: Any) -> dict[Any, int]:
            return await end_offsets(consumer, tps) if tps else {}

        key = cache_key("meta", self)
        found = self._driver_call(key, make, ends, "fetch end offsets")
        result = {f"{tp.topic}:{tp.partition}": int(end) for tp, end in found.items()}
        filesystem.create_dir(f"{root}/kafka", recursive=True)
        with filesystem.open_output_stream(path) as stream:
            stream.write(json.dumps(result).encode())
        return result


def _parse_split_id(key: str) -> tuple[str, int] | None:
    topic, sep, partition = key.rpartition(":")
    if not sep or not topic or not partition.isdigit():
        return None
    return topic, int(partition)


def _split_order(key: str) -> tuple[str, int]:
    parsed = _parse_split_id(key)
    return parsed if parsed is not None else (key, -1)
