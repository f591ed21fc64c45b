"""What the user describes: an immutable plan of frozen dataclasses (no Ray, no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tideflow.core.scheduler import ResourceRequest
from tideflow.streaming.connectors._base import Sink, Source
from tideflow.streaming.errors import ConfigError

__all__ = [
    "CheckpointConfig",
    "FusedSplit",
    "Plan",
    "StageKind",
    "StageSpec",
    "split_fused",
]

StageKind = Literal["batches", "map", "flat_map", "filter", "keyed"]


@dataclass(frozen=True, kw_only=True)
class StageSpec:
    """One transformation stage: a user function or class run in an elastic actor pool."""

    name: str
    """Unique within the pipeline; names metrics, logs and dead letters."""
    udf: Any
    """A function, or a class instantiated once per actor (its ``__call__`` is the function)."""
    kind: StageKind = "batches"
    """``batches``: Arrow table → table; ``map``/``flat_map``/``filter``: per row (dicts)."""
    constructor_args: tuple[Any, ...] = ()
    """Positional arguments of a class ``udf``."""
    constructor_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of a class ``udf``."""
    resources: ResourceRequest = field(default_factory=ResourceRequest)
    """What each actor of the stage reserves."""
    min_actors: int = 1
    """Smallest pool size (the pool starts here)."""
    max_actors: int = 1
    """Largest pool size; above ``min_actors`` the pool autoscales."""
    max_in_flight: int = 2
    """Batches sent to one actor at once (2 keeps an actor busy while the next arrives)."""
    max_retries: int = 3
    """Retries of a batch whose actor died, before the batch is retried in halves."""
    key: str | None = None
    """For a keyed stage: the column whose value routes a row and keys its state."""
    partitions: int = 1
    """For a keyed stage: how many actors share the keys (fixed for the job's lifetime)."""
    batch_size: int | None = None
    """For a ``batches`` stage: re-batch its input into batches of this many rows (the
    last of an epoch may be smaller); None: batches as the stage before made them."""
    on_timer: Callable[[Any, Any], Any] | None = None
    """For a keyed stage: ``on_timer(key, state) -> (new_state, emitted)``, run once a key
    has had no row for ``timer_s`` seconds (processing time)."""
    timer_s: float | None = None
    """For a keyed stage with ``on_timer``: each row of a key arms its timer this many
    seconds later (> 0)."""
    fused: bool = False
    """Run in the job's I/O actor instead of a pool of its own (operator fusion, as Ray
    Data fuses a map into its read tasks and Flink chains operators): right after the
    source when every stage before it is fused too, else right before the sink when every
    stage after it is. No actor start-up and no trip through the object store, for light,
    stateless functions; they share the I/O actor's process and resources with every read
    and write (a row that kills the process restarts the job from its last checkpoint)."""
    on_end: Callable[[Any, Any], Any] | None = None
    """For a keyed stage: ``on_end(key, state) -> emitted``, run for every key left when
    the input ends (not when the job is stopped); the keys are forgotten then."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("stage name must be a non-empty string")
        if not callable(self.udf):
            raise ConfigError(
                f"stage {self.name!r}: expected a function or a class; got {self.udf!r}"
            )
        if not 1 <= self.min_actors <= self.max_actors:
            raise ConfigError(
                f"stage {self.name!r}: concurrency must satisfy 1 <= min <= max; "
                f"got ({self.min_actors}, {self.max_actors})"
            )
        if self.kind == "keyed" and (not self.key or self.partitions < 1):
            raise ConfigError(
                f"stage {self.name!r}: a keyed stage needs key= (a column) and partitions >= 1"
            )
        self._check_keyed_hooks()
        if self.batch_size is not None and (
            self.kind != "batches"
            or isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ConfigError(
                f"stage {self.name!r}: batch_size is an int >= 1 of map_batches stages; "
                f"got {self.batch_size!r} on a {self.kind} stage"
            )
        if self.max_in_flight < 1:
            raise ConfigError(
                f"stage {self.name!r}: max_in_flight must be >= 1; got {self.max_in_flight}"
            )
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(
                f"stage {self.name!r}: max_retries must be an int >= 0; got {retries!r}"
            )
        if self.fused:
            self._check_fused()

    def _check_keyed_hooks(self) -> None:
        hooks = {"on_timer": self.on_timer, "on_end": self.on_end}
        given = [name for name, hook in hooks.items() if hook is not None]
        if given and self.kind != "keyed":
            raise ConfigError(f"stage {self.name!r}: {given} are for keyed stages only")
        for name in given:
            if not callable(hooks[name]):
                raise ConfigError(f"stage {self.name!r}: {name} must be a function")
        timer_s = self.timer_s
        if (self.on_timer is None) != (timer_s is None):
            raise ConfigError(
                f"stage {self.name!r}: on_timer and timer_s come together; got "
                f"on_timer={self.on_timer!r}, timer_s={timer_s!r}"
            )
        if timer_s is not None and (
            isinstance(timer_s, bool) or not isinstance(timer_s, int | float) or timer_s <= 0
        ):
            raise ConfigError(f"stage {self.name!r}: timer_s must be a number > 0; got {timer_s!r}")

    def _check_fused(self) -> None:
        r = self.resources
        wrong = {
            "kind": self.kind if self.kind == "keyed" else None,
            "concurrency": (
                (self.min_actors, self.max_actors)
                if (self.min_actors, self.max_actors) != (1, 1)
                else None
            ),
            "batch_size": self.batch_size,
            "num_gpus": r.num_gpus or None,
            "accelerator_type": r.accelerator_type,
            "resources": r.resources or None,
            "label_selector": r.label_selector or None,
        }
        given = {name: value for name, value in wrong.items() if value is not None}
        if given:
            message = (
                f"stage {self.name!r}: a fused stage runs in the job's I/O actor, one batch at a "
                f"time with its resources: it takes no {sorted(given)} (got {given}); "
                "drop fused=True to give the stage a pool of its own"
            )
            raise ConfigError(message)

    @property
    def is_class(self) -> bool:
        return isinstance(self.udf, type)


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    """Where and how often a job checkpoints."""

    uri: str
    """Base URI (local path, file://, s3://, hdfs://); a job lives in ``<uri>/<job_id>``."""
    interval_s: float = 3.0
    """Seconds between checkpoint barriers (> 0)."""
    max_batches: int | None = None
    """At most this many source batches per epoch: a barrier also comes once an epoch has
    read them, whichever is first (like Spark's ``maxFilesPerTrigger``). An epoch's rows
    are committed only once all of them have passed every stage, so with slow batches
    (video shards, LLM calls) this bounds the latency to commit and what a crash replays.
    ``None``: time alone."""
    retain: int = 3
    """Complete checkpoints kept (>= 1)."""
    timeout_s: float = 120.0
    """An epoch not complete after this long fails (the previous checkpoint stays)."""
    mode: Literal["epoch", "ack"] = "epoch"
    """``epoch``: exactly-once — sinks commit each epoch once its checkpoint is durable.
    ``ack``: record-level acknowledgement for sources with per-record offsets (Kafka) —
    sinks commit every batch as it is written (lowest latency), and each checkpoint holds
    the contiguous prefix of acknowledged offsets per split. After a crash the records past
    that prefix are read again: at least once, so a sink or consumer dedupes by the record's
    coordinates. Keyed stateful stages need ``epoch``."""

    def __post_init__(self) -> None:
        if not self.uri:
            raise ConfigError("CheckpointConfig.uri must be a non-empty URI")
        if self.interval_s <= 0:
            raise ConfigError(f"CheckpointConfig.interval_s must be > 0; got {self.interval_s}")
        if self.mode not in ("epoch", "ack"):
            raise ConfigError(f'CheckpointConfig.mode must be "epoch" or "ack"; got {self.mode!r}')
        cap = self.max_batches
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            msg = f"CheckpointConfig.max_batches must be None or an int >= 1; got {cap!r}"
            raise ConfigError(msg)
        if self.retain < 1:
            raise ConfigError(f"CheckpointConfig.retain must be >= 1; got {self.retain}")


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A whole job: one source, a chain of stages, one sink."""

    source: Source
    """Where rows come from."""
    read_batch_size: int = 1024
    """Rows per batch read from the source (> 0)."""
    priority_column: str | None = None
    """An integer column: a batch takes the highest priority of its rows and overtakes
    queued batches of lower priority at every stage (order is kept within a priority)."""
    stages: tuple[StageSpec, ...] = ()
    """The transformations, in order."""
    sink: Sink | None = None
    """Where rows go; set by ``write``."""
    sink_writers: int = 1
    """How many writers write the sink at once (``write(sink, writers=)``)."""


@dataclass(frozen=True)
class FusedSplit:
    """A plan's stages by where they run."""

    read: tuple[StageSpec, ...]
    """Fused stages right after the source: run in the I/O actor on each batch it reads."""
    pooled: tuple[StageSpec, ...]
    """Stages with actors of their own (pools, keyed partitions)."""
    write: tuple[StageSpec, ...]
    """Fused stages right before the sink: run in the I/O actor on each batch it writes."""


def split_fused(plan: Plan) -> FusedSplit:
    """Where each stage of ``plan`` runs; a fused stage between two pooled ones is refused
    with a :class:`ConfigError` naming it (the I/O actor reads and writes: it can host only
    the ends of the chain)."""
    stages = plan.stages
    first_pooled = next((i for i, s in enumerate(stages) if not s.fused), len(stages))
    last_pooled = max((i for i, s in enumerate(stages) if not s.fused), default=-1)
    # With no pooled stage at all, every fused stage runs on the read side.
    read = stages[:first_pooled]
    write = stages[last_pooled + 1 :] if last_pooled >= 0 else ()
    pooled = stages[first_pooled : last_pooled + 1]
    inner = [s.name for s in pooled if s.fused]
    if inner:
        message = (
            f"stages {inner} are fused but sit between stages with pools of their own; a fused "
            "stage runs in the I/O actor, so it must come right after the source (every stage "
            "before it fused) or right before the sink (every stage after it fused)"
        )
        raise ConfigError(message)
    if write and plan.sink_writers > 1:
        message = (
            f"fused stages before the sink ({[s.name for s in write]}) run in the I/O actor, "
            f"which is the only writer they have: use write(sink) with one writer, not "
            f"writers={plan.sink_writers}, or drop fused=True"
        )
        raise ConfigError(message)
    return FusedSplit(read=read, pooled=pooled, write=write)
