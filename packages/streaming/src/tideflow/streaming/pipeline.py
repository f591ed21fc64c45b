"""The fluent API: ``Pipeline.read(source).map_batches(...).write(sink).run(job_id=...)``."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.core.scheduler import ResourceRequest
from tideflow.streaming._bounds import pool_bounds
from tideflow.streaming._metrics import JobResult
from tideflow.streaming._plan import CheckpointConfig, Plan, StageKind, StageSpec, split_fused
from tideflow.streaming._user_error import user_error
from tideflow.streaming.connectors._base import Sink, Source
from tideflow.streaming.errors import ConfigError, PipelineError

__all__ = ["Job", "Pipeline"]


class Job:
    """A running job: :meth:`stop` it (unbounded sources) and :meth:`wait` for its result."""

    def __init__(self, executor: Any) -> None:
        self._executor = executor
        self._result: JobResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"tideflow-job-{executor.ctx.job_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._executor.run()
        except BaseException as error:
            self._error = user_error(error)  # ours, its own message first (not Ray's wrapper)

    @property
    def job_id(self) -> str:
        return str(self._executor.ctx.job_id)

    @property
    def progress(self) -> JobResult:
        """The metrics so far (updated while the job runs)."""
        return self._executor.result

    def stop(self) -> None:
        """Finish the epoch in flight, take a final checkpoint, shut down. Returns at once."""
        self._executor.stop()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> JobResult:
        """Block until the job ends; return its result or raise its error.

        An exception raised inside one of the job's actors is raised as itself when it is
        one of Tideflow's, otherwise as an :class:`~tideflow.streaming.errors.ActorError`
        with its message (the original is its ``__cause__``), never in Ray's wrapper.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"job {self.job_id!r} still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class Pipeline:
    """An immutable description of a job; each method returns a new pipeline.

    >>> result = (
    ...     Pipeline.read(ParquetSource("s3://bucket/in/"), batch_size=500)
    ...     .map_batches(decode, num_cpus=1)                         # table -> table
    ...     .map_batches(Embedder, num_gpus=1, concurrency=(1, 4))   # one instance per actor
    ...     .write(ParquetSink("s3://bucket/out/"))
    ...     .run(job_id="embed-2026-11",
    ...          checkpoint=CheckpointConfig(uri="s3://bucket/ckpt/", interval_s=3))
    ... )  # doctest: +SKIP
    """

    def __init__(self, plan: Plan) -> None:
        self._plan = plan

    @property
    def plan(self) -> Plan:
        """The plan this pipeline describes."""
        return self._plan

    @classmethod
    def read(
        cls, source: Source, *, batch_size: int = 1024, priority_column: str | None = None
    ) -> Pipeline:
        """Start a pipeline that reads ``source`` in batches of at most ``batch_size`` rows.

        With ``priority_column`` (an integer column), a batch takes the highest priority of
        its rows and overtakes queued batches of lower priority at every stage: urgent
        records go first. Order is kept within one priority.
        """
        if not isinstance(source, Source):
            raise ConfigError(
                f"Pipeline.read expects a tideflow.streaming.connectors Source; got {source!r}"
            )
        if batch_size < 1:
            raise ConfigError(f"Pipeline.read: batch_size must be >= 1; got {batch_size}")
        return cls(Plan(source=source, read_batch_size=batch_size, priority_column=priority_column))

    def map_batches(self, fn: Callable[..., Any], **options: Any) -> Pipeline:
        """Apply ``fn`` (Arrow table → table, dict of columns or DataFrame) to each batch.

        ``fn`` may be a class: one instance per actor (load models in ``__init__``), called
        with each batch. Options: ``name``, ``num_cpus`` (1), ``num_gpus`` (0),
        ``accelerator_type``, ``memory``, ``resources`` (custom), ``label_selector`` (node
        labels its actors' nodes must have, e.g. ``{"pool": "online"}``), ``concurrency``
        (an int, or ``(min, max)`` to autoscale), ``max_in_flight`` (2 per actor), ``max_retries``
        (3: retries of a batch whose actor died; then the batch is retried in halves down
        to the rows that kill it, which go to the dead-letter output),
        ``fn_constructor_args``, ``fn_constructor_kwargs``, ``batch_size`` (re-batch the
        input into batches of this many rows, e.g. after a stage that fans out one row into
        many: rows of consecutive batches of one epoch are joined and cut, in order; the
        rest of an epoch goes on as a smaller batch once the stages before have passed all
        of the epoch; default: the batches as they come), ``fused`` (False; True runs the
        stage in the job's I/O actor instead of a pool of its own — operator fusion, for a
        light stateless function right after the source or right before the sink: no actor
        to start, no trip through the object store; it shares the I/O actor's process, so a
        row that kills it restarts the job from its last checkpoint).
        ``map``, ``flat_map`` and ``filter`` take the same options but ``batch_size``.
        """
        return self._stage("batches", fn, options)

    def map(self, fn: Callable[[dict[str, Any]], dict[str, Any]], **options: Any) -> Pipeline:
        """Apply ``fn`` to each row (a dict) and keep what it returns (a dict)."""
        return self._stage("map", fn, options)

    def flat_map(self, fn: Callable[[dict[str, Any]], Any], **options: Any) -> Pipeline:
        """Apply ``fn`` to each row; it returns an iterable of rows (zero or more)."""
        return self._stage("flat_map", fn, options)

    def filter(self, fn: Callable[[dict[str, Any]], bool], **options: Any) -> Pipeline:
        """Keep the rows for which ``fn`` is true."""
        return self._stage("filter", fn, options)

    def stateful_map(
        self,
        key: str,
        fn: Callable[..., Any],
        *,
        on_timer: Callable[[Any, Any], Any] | None = None,
        timer_s: float | None = None,
        on_end: Callable[[Any, Any], Any] | None = None,
        **options: Any,
    ) -> Pipeline:
        """Keep per-key state: ``fn(state, row) -> (new_state, emitted)`` for each row.

        Rows are routed by the value of column ``key`` to one of ``partitions`` actors
        (option, default 1, fixed for the job's lifetime) and seen in order per key.
        ``state`` is ``None`` for a new key; returning ``None`` as the new state forgets the
        key. ``emitted`` is a row (dict), a list of rows, or ``None``. The states are part
        of every checkpoint, so e.g. gathering the shards of a video until it is complete
        survives a crash. ``fn`` may be a class (one instance per partition actor).

        Timers (processing time, like Flink's keyed timers): with ``on_timer`` and
        ``timer_s``, each row of a key arms the key's timer ``timer_s`` seconds later (a
        later row moves it), and once a key had no row for that long
        ``on_timer(key, state) -> (new_state, emitted)`` runs — e.g. flush a video whose
        last shards never came. A timer fires once; the key's next row arms it again;
        ``None`` as the new state forgets the key. Timers are wall-clock times kept in the
        checkpoints with the states, so one armed before a crash fires after the rerun
        (at once if it fell due meanwhile). Their output is committed with an epoch like
        any row's, exactly once. Timers stop when the input ends (``on_end`` gets the rest).

        End of input (like Bytewax's ``on_eof``): when a bounded source ends (or every
        split of an unbounded one reached its end), ``on_end(key, state) -> emitted`` runs
        for every key left, after every row before it passed the stage, and all keys are
        forgotten; its rows go on in the last epoch. A stopped job (``Job.stop``, Ctrl-C)
        keeps its states instead, for the rerun; a finished job run again emits nothing.
        Without ``on_end`` the keys left at the end stay in the last checkpoint, unseen.
        A key whose ``on_timer`` or ``on_end`` raises is a dead letter.
        """
        partitions = options.pop("partitions", 1)
        if not isinstance(partitions, int) or partitions < 1:
            raise ConfigError(f"stateful_map: partitions must be an int >= 1; got {partitions!r}")
        pipe = self._stage("keyed", fn, options, key=key, partitions=partitions)
        *before, spec = pipe.plan.stages
        spec = dataclasses.replace(spec, on_timer=on_timer, timer_s=timer_s, on_end=on_end)
        return Pipeline(dataclasses.replace(pipe.plan, stages=(*before, spec)))

    def iter_batches(
        self, *, interval_s: float = 1.0, poll_s: float = 0.1, **options: Any
    ) -> Iterator[pa.Table]:
        """Run a bounded pipeline (without ``write``) and yield its output as Arrow tables.

        Output arrives per committed epoch, so a table comes at least every ``interval_s``
        seconds while rows flow; rows keep the order of the source (per split). The job
        uses a temporary directory and does not resume: use :meth:`run` with a sink for
        that. ``options`` are those of :meth:`start` except ``checkpoint``.
        """
        import tempfile

        from tideflow.streaming._collect import CollectingSink

        if self._plan.sink is not None:
            raise PipelineError("iter_batches() yields the output itself: drop write(sink)")
        if not self._plan.source.bounded:
            raise PipelineError(
                "iter_batches() needs a bounded source; run an unbounded one with start()"
            )
        with tempfile.TemporaryDirectory(prefix="tideflow-iter-") as tmp:
            sink = CollectingSink(f"{tmp}/out")
            job = self.write(sink).start(
                job_id=options.pop("job_id", "iter"),
                checkpoint=CheckpointConfig(uri=f"{tmp}/ckpt", interval_s=interval_s),
                **options,
            )
            seen = 0
            while True:
                finished = job.done()
                epochs = CollectingSink.committed_epochs(f"{tmp}/out")
                for epoch in epochs[seen:]:
                    table = CollectingSink.read_epoch(f"{tmp}/out", epoch)
                    if table.num_rows:
                        yield table
                seen = len(epochs)
                if finished:
                    job.wait()  # raises the job's error, if any
                    return
                time.sleep(poll_s)

    def write(self, sink: Sink, *, writers: int = 1) -> Pipeline:
        """End the pipeline in ``sink`` (two-phase: output appears when checkpoints commit).

        ``writers`` > 1 writes with that many writers at once, each in an actor of its own
        (a batch goes to the least busy one; every epoch is still committed once, with the
        files of all of them), for sinks that allow it (``sink.parallel_writes``: the file
        sinks, Iceberg, Lance; not Kafka, whose per-partition order one writer keeps). Use
        it when writing (encoding, compressing, uploading) is the slowest stage.
        """
        if not isinstance(sink, Sink):
            raise ConfigError(f"Pipeline.write expects a tideflow.streaming Sink; got {sink!r}")
        if self._plan.sink is not None:
            raise PipelineError("the pipeline already ends in a sink; write() comes once, last")
        if isinstance(writers, bool) or not isinstance(writers, int) or writers < 1:
            raise ConfigError(f"Pipeline.write: writers must be an int >= 1; got {writers!r}")
        if writers > 1 and not sink.parallel_writes:
            message = (
                f"Pipeline.write: {sink!r} takes one writer (its parallel_writes is False); "
                f"got writers={writers}"
            )
            raise ConfigError(message)
        return Pipeline(dataclasses.replace(self._plan, sink=sink, sink_writers=writers))

    def run(
        self,
        *,
        job_id: str,
        progress: bool | None = None,
        metrics_port: int | None = None,
        **options: Any,
    ) -> JobResult:
        """Run the job until a bounded source ends, or until stopped; return its metrics.

        Blocks. On the main thread, the first Ctrl-C (SIGINT) or SIGTERM stops the job
        cleanly — the epoch in flight finishes and a final checkpoint is taken — and a second
        one gets the handler that was there before (a Ctrl-C interrupts at once).
        ``progress`` shows a live table of the stages on stderr (default: when stderr is a
        terminal; ``True`` where it is not: a plain line every 2 s and one at the end);
        ``metrics_port`` serves Prometheus metrics on ``127.0.0.1:<port>/metrics`` while the
        job runs. Other options are those of
        :meth:`start`.
        """
        from tideflow.streaming._progress import ProgressDisplay
        from tideflow.streaming._prometheus import serve_metrics

        job = self.start(job_id=job_id, **options)
        server = serve_metrics(lambda: job.progress, metrics_port) if metrics_port else None
        display = ProgressDisplay()
        if progress is False:
            display.enabled = False
        elif progress:  # asked for: plain lines where stderr is not a terminal
            display.force()
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C, and SIGTERM (docker stop, Kubernetes, ray job stop), stop the job
            # cleanly; a second signal of either gets the handler that was there before.
            previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

            def on_stop_signal(signum: int, frame: Any) -> None:
                for number, handler in previous.items():
                    signal.signal(number, handler)
                get_logger("tideflow.streaming").info(
                    "job.stopping", job_id=job_id, signal=signal.Signals(signum).name
                )
                job.stop()

            for number in previous:
                signal.signal(number, on_stop_signal)
        try:
            with display:
                while display.enabled and not job.done():
                    display.update(job.progress)
                    time.sleep(0.5)
                while not job.done():  # short waits keep the main thread responsive to signals
                    time.sleep(0.1)
                result = job.wait()
                display.update(result, final=True)
                return result
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            if server is not None:
                server.shutdown()

    def start(
        self,
        *,
        job_id: str,
        checkpoint: CheckpointConfig | None = None,
        dead_letter: Sink | None = None,
        queue_limit: int | None = None,
        on_progress: Callable[[JobResult], None] | None = None,
        on_complete: Callable[[list[Any]], None] | None = None,
        id_column: str | None = None,
        complete_every: int = 10_000,
        on_dead_letter: Callable[[list[dict[str, Any]]], None] | None = None,
        max_restarts: int = 3,
        io_resources: Mapping[str, float] | None = None,
        io_label_selector: Mapping[str, str] | None = None,
    ) -> Job:
        """Start the job in the background and return its :class:`Job` handle.

        With ``checkpoint``, a rerun with the same ``job_id`` resumes after the last
        complete checkpoint, and a finished bounded job run again writes nothing new
        (without it, every run starts over). ``dead_letter`` receives rows whose function
        raised, with the error and stage (default: JSON lines under
        ``<checkpoint uri>/<job_id>/dead_letters``). ``queue_limit`` bounds the batches
        waiting before each stage (default: 2 × the stage's max actors × max in flight).
        ``on_complete(ids)`` is called with the values of ``id_column`` of rows whose epoch
        was committed, in lists of at most ``complete_every``, at least once per row (again
        after a crash): make it idempotent. ``on_dead_letter(rows)`` is called with the
        dead-letter rows (dicts: ``stage``, ``error``, ``record`` — the input as JSON — and
        ``epoch``) once they are committed to the dead-letter output, in lists of at most
        ``complete_every``, at least once (again after a crash), on a thread of the job (keep
        it short: alert, count, enqueue). ``on_progress(result)`` is called about every
        second. When a part of the job is lost while it runs — the node that held its I/O
        actor, a sink writer, a keyed stage's partition or batches in flight dies — the job
        starts again from its last complete checkpoint, with new actors wherever Ray has
        room, at most ``max_restarts`` times (0: it fails instead, and a rerun resumes);
        ``JobResult.restarts`` counts them; when a node the I/O actor, a sink writer or a
        keyed stage runs on is drained (preemption), the job commits what it read and moves
        to other nodes. ``io_resources`` and ``io_label_selector`` pin the I/O actor and the
        sink's writers to the nodes with those Ray custom resources or node labels (a pool;
        stages take ``resources=`` and ``label_selector=``). Starts a local Ray if none is
        running; on a connected Ray (``ray.init(address=...)``, a cluster) it runs there.
        """
        from tideflow.core.ray_start import start_ray
        from tideflow.streaming._acks import check_ack_mode
        from tideflow.streaming._execution.options import RunOptions
        from tideflow.streaming._executor import Executor

        if not job_id or "/" in job_id:
            raise ConfigError(f"run: job_id must be a non-empty name without '/'; got {job_id!r}")
        if self._plan.sink is None:
            raise PipelineError("the pipeline has no sink: end it with .write(sink) before run()")
        options = RunOptions(
            checkpoint=checkpoint,
            dead_letter=dead_letter,
            queue_limit=queue_limit,
            on_progress=on_progress,
            on_complete=on_complete,
            id_column=id_column,
            complete_every=complete_every,
            on_dead_letter=on_dead_letter,
            max_restarts=max_restarts,
            io_resources=io_resources,
            io_label_selector=io_label_selector,
        )  # validated before Ray starts
        split_fused(self._plan)  # a fused stage out of place: refused before Ray starts too
        if checkpoint is not None and checkpoint.mode == "ack":
            check_ack_mode(self._plan)
        start_ray()  # unless Ray runs already; a Ctrl-C meanwhile leaves nothing running
        return Job(Executor(self._plan, job_id=job_id, options=options))

    def _stage(
        self,
        kind: StageKind,
        fn: Callable[..., Any],
        options: Mapping[str, Any],
        *,
        key: str | None = None,
        partitions: int = 1,
    ) -> Pipeline:
        if self._plan.sink is not None:
            raise PipelineError(f"cannot add a {kind} stage after write(): the sink comes last")
        known = {
            "name",
            "num_cpus",
            "num_gpus",
            "accelerator_type",
            "memory",
            "resources",
            "label_selector",
            "concurrency",
            "max_in_flight",
            "max_retries",
            "fn_constructor_args",
            "fn_constructor_kwargs",
            *(("batch_size",) if kind == "batches" else ()),
            *(("fused",) if kind != "keyed" else ()),
        }
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"{kind} stage: unknown options {unknown}; known: {sorted(known)}")
        name = str(options.get("name") or getattr(fn, "__name__", kind))
        low, high = pool_bounds(options.get("concurrency", 1), f"stage {name!r}: concurrency")
        taken = {s.name for s in self._plan.stages}
        base, n = name, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        spec = StageSpec(
            name=name,
            udf=fn,
            kind=kind,
            constructor_args=tuple(options.get("fn_constructor_args", ())),
            constructor_kwargs=dict(options.get("fn_constructor_kwargs") or {}),
            resources=ResourceRequest(
                num_cpus=options.get("num_cpus", 1),
                num_gpus=options.get("num_gpus", 0),
                accelerator_type=options.get("accelerator_type"),
                memory=options.get("memory"),
                resources=dict(options.get("resources") or {}),
                label_selector=dict(options.get("label_selector") or {}),
            ),
            min_actors=low,
            max_actors=high,
            max_in_flight=options.get("max_in_flight", 2),
            max_retries=options.get("max_retries", 3),
            key=key,
            partitions=partitions,
            batch_size=options.get("batch_size"),
            fused=_flag(options.get("fused", False), "fused"),
        )
        return Pipeline(dataclasses.replace(self._plan, stages=(*self._plan.stages, spec)))


def _flag(value: Any, option: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{option} must be True or False; got {value!r}")
    return value
