"""The rollout pool: work requests of a few prompts, taken by whichever worker is free, in a
pool of rollout workers that the core autoscaler sizes.

* A batch is cut into shards of ``RolloutConfig.prompts_per_request`` prompts. Each worker
  takes one shard at a time from a queue ordered by (batch, shard), so a worker that joins
  takes the next shard at once and one that leaves takes no more.
* Every call carries the newest published weights and a worker behind them loads them
  before it generates: a worker that joins late generates with the current version. With
  partial rollouts each new version is also offered to every worker at once, which loads
  it between two segments of the generation it is running.
* A worker that dies (its call fails with ``RayActorError``) loses no prompt: its shard goes
  back to the front of the queue, a live worker generates it again (same seed) and a
  replacement starts; ``RolloutConfig.max_restarts`` bounds the replacements of a run. A
  worker that dies while retiring (a scale-down let it end its shard) is not replaced.
* Sizing: every ``sample_interval_s`` the pool is read as a utilization sample
  (:func:`~tideflow.rl._rollout_plan.rollout_sample`) and a
  :class:`~tideflow.core.autoscaler.PoolScaler` decides, with its sliding window and
  debounce: the pool grows while the trainer waits for samples and shrinks while the
  buffer stays full.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tideflow.core.autoscaler import PoolScaler
from tideflow.core.observability import ScaleEvent, get_logger
from tideflow.rl._rollout import RolloutWorker
from tideflow.rl._rollout_plan import (
    Shard,
    ShardRecord,
    plan_shards,
    prompts_per_request,
    rollout_sample,
    scaling_config,
)
from tideflow.rl.config import RLConfig
from tideflow.rl.errors import RoleFailedError

__all__ = ["RolloutPool"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.rollout_pool")

POOL_NAME = "rollout"


class _WallClock:
    """``time.time()``: scale events line up with the steps' wall-clock intervals."""

    def now(self) -> float:
        return time.time()


@dataclass(eq=False)
class _Worker:
    rank: int
    handle: Any
    state: str = "starting"
    """starting → ready → retiring (ends its shard) → gone; or dead."""
    shard: Shard | None = None
    task: asyncio.Task[None] | None = None
    started_at: float = field(default_factory=time.time)


class RolloutPool:
    """The rollout workers of one run, driven from the driver's event loop."""

    def __init__(self, config: RLConfig, *, trainer_waited: Callable[[], float]) -> None:
        """``trainer_waited``: seconds the trainer has waited for samples so far."""
        import ray

        self._config = config.rollout
        self._model = config.model
        self._trainer_waited = trainer_waited
        self._last_sample: tuple[float, float] | None = None
        self._cls = ray.remote(RolloutWorker).options(
            num_cpus=self._config.num_cpus, num_gpus=self._config.num_gpus
        )
        self._workers: list[_Worker] = []
        self._queue: asyncio.PriorityQueue[tuple[int, int, int, Shard]] = asyncio.PriorityQueue()
        self._futures: dict[tuple[int, int], asyncio.Future[tuple[dict[str, Any], Any]]] = {}
        self._weights: tuple[int, list[Any]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._resizes: list[tuple[ScaleEvent, list[_Worker]]] = []
        self._error: BaseException | None = None
        self._clock = _WallClock()
        auto = self._config.autoscale
        self._scaler = (
            PoolScaler(POOL_NAME, scaling_config(auto), clock=self._clock) if auto else None
        )
        self.restarts = 0
        """Workers that died and were replaced."""
        self.records: list[ShardRecord] = []
        """Every shard generated, in the order they finished."""

    # -- what the driver reads -----------------------------------------------------------------
    def _live(self) -> list[_Worker]:
        return [w for w in self._workers if w.state in ("starting", "ready")]

    @property
    def size(self) -> int:
        """Workers in the pool, starting ones included."""
        return len(self._live())

    @property
    def handles(self) -> list[Any]:
        """The actor handles of the pool's workers (tests inject faults through them)."""
        return [w.handle for w in self._live()]

    def busy(self) -> list[tuple[int, Any, Shard]]:
        """``(rank, handle, shard)`` of each worker generating a shard now."""
        return [(w.rank, w.handle, w.shard) for w in self._live() if w.shard is not None]

    @property
    def events(self) -> list[ScaleEvent]:
        """The pool's scale events, oldest first (with durations once the resize ended)."""
        return self._scaler.events if self._scaler is not None else []

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the first ``num_workers`` workers and wait until they are ready."""
        workers = [self._new_worker() for _ in range(self._config.num_workers)]
        await asyncio.gather(*(w.handle.start.remote() for w in workers))
        for worker in workers:
            self._enter(worker)
        if self._scaler is not None:
            self._spawn(self._monitor())

    def close(self) -> None:
        """Stop every worker and task of the pool."""
        import ray

        for task in list(self._tasks):
            task.cancel()
        for worker in self._workers:
            if worker.state != "dead":
                ray.kill(worker.handle)
            worker.state = "dead"

    def publish(self, version: int, chunks: Sequence[Any]) -> None:
        """New published weights: every later call carries them; with partial rollouts
        they are offered to every worker now (loaded between two segments)."""
        self._weights = (version, list(chunks))
        if self._config.partial_rollout:
            for worker in self._live():
                self._spawn(self._offer(worker, version, list(chunks)))

    async def generate(
        self, batch: int, items: Sequence[Mapping[str, Any]], seed: int
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        """Generate batch ``batch``: its parts (object refs, in shard order, for the reward
        worker) and each shard's figures (rank, interval, load seconds, versions)."""
        if self._error is not None:
            raise self._error
        per = prompts_per_request(self._config, len(items))
        futures = []
        for shard in plan_shards(batch, items, per_request=per, seed=seed):
            future = asyncio.get_running_loop().create_future()
            self._futures[(batch, shard.number)] = future
            self._queue.put_nowait((batch, shard.number, 0, shard))
            futures.append(future)
        done = await asyncio.gather(*futures)
        return [part for _, part in done], [meta for meta, _ in done]

    # -- workers -------------------------------------------------------------------------------
    def _new_worker(self) -> _Worker:
        rank = len(self._workers)
        worker = _Worker(rank=rank, handle=self._cls.remote(self._config, self._model, rank))
        self._workers.append(worker)
        return worker

    def _add(self) -> _Worker:
        worker = self._new_worker()
        worker.task = self._spawn(self._bring_up(worker))
        return worker

    async def _bring_up(self, worker: _Worker) -> None:
        import ray

        try:
            await worker.handle.start.remote()
            if self._weights is not None:  # a late joiner generates with the current version
                await worker.handle.load_weights.remote(*self._weights)
        except ray.exceptions.RayActorError as error:
            self._died(worker, None, 0, error)
            return
        self._enter(worker)
        await self._serve(worker)

    def _enter(self, worker: _Worker) -> None:
        worker.state = "ready"
        version = self._weights[0] if self._weights else 0
        _log().info("rollout.worker_joined", rank=worker.rank, version=version, size=self.size)
        if worker.task is None:
            worker.task = self._spawn(self._serve(worker))
        for event, workers in list(self._resizes):
            if all(w.state != "starting" for w in workers):
                self._resizes.remove((event, workers))
                if self._scaler is not None:
                    self._scaler.resize_completed(event)

    async def _serve(self, worker: _Worker) -> None:
        import ray

        while worker.state == "ready":
            _, _, attempt, shard = await self._queue.get()
            worker.shard = shard
            current = self._weights
            meta_ref, part_ref = worker.handle.generate_shard.options(num_returns=2).remote(
                shard.batch, list(shard.items), shard.seed, list(shard.positions), current
            )
            try:
                meta = await meta_ref
            except ray.exceptions.RayActorError as error:
                self._died(worker, shard, attempt, error)
                return
            worker.shard = None
            self.records.append(
                ShardRecord(
                    batch=shard.batch,
                    number=shard.number,
                    rank=worker.rank,
                    attempt=attempt,
                    current_version=current[0] if current else 0,
                    versions=(int(meta["versions"][0]), int(meta["versions"][1])),
                    interval=(float(meta["interval"][0]), float(meta["interval"][1])),
                )
            )
            future = self._futures.pop((shard.batch, shard.number))
            if not future.done():
                future.set_result((meta, part_ref))
        if worker.state == "retiring":
            self._kill(worker)

    def _died(self, worker: _Worker, shard: Shard | None, attempt: int, error: Exception) -> None:
        retiring = worker.state == "retiring"  # the pool had shrunk past it already
        worker.state, worker.shard = "dead", None
        lost = f"batch {shard.batch} shard {shard.number}" if shard else "no shard"
        _log().warning("rollout.worker_died", rank=worker.rank, lost=lost, error=str(error))
        if retiring:  # its shard is generated again; no replacement undoes the scale-down
            if shard is not None:
                self._queue.put_nowait((shard.batch, shard.number, attempt + 1, shard))
            return
        self.restarts += 1
        if self.restarts > self._config.max_restarts:
            message = (
                f"{self.restarts} rollout workers died, more than RolloutConfig.max_restarts "
                f"({self._config.max_restarts}); the last: {error}"
            )
            self._fail(RoleFailedError(message))
            return
        if shard is not None:  # ahead of later work: (batch, shard) orders the queue
            self._queue.put_nowait((shard.batch, shard.number, attempt + 1, shard))
        replacement = self._add()
        _log().info("rollout.worker_replaced", rank=worker.rank, by=replacement.rank)

    def _kill(self, worker: _Worker) -> None:
        import ray

        worker.state = "gone"
        ray.kill(worker.handle)

    async def _offer(self, worker: _Worker, version: int, chunks: list[Any]) -> None:
        import ray

        # A dead worker's death shows, and is handled, where it generates.
        with contextlib.suppress(ray.exceptions.RayActorError):
            await worker.handle.offer_weights.remote(version, chunks)

    # -- sizing --------------------------------------------------------------------------------
    async def _monitor(self) -> None:
        assert self._config.autoscale is not None
        while True:
            await asyncio.sleep(self._config.autoscale.sample_interval_s)
            self.scale_step()

    def scale_step(self) -> ScaleEvent | None:
        """Sample the pool, ask the scaler, resize when it says so; returns the event."""
        assert self._scaler is not None and self._config.autoscale is not None
        live = self._live()
        now, waited = self._clock.now(), self._trainer_waited()
        before = self._last_sample or (now, waited)
        self._last_sample = (now, waited)
        sample = rollout_sample(
            now,
            total=len(live),
            starting=sum(w.state == "starting" for w in live),
            busy=sum(w.shard is not None for w in live),
            queued=self._queue.qsize(),
            trainer_wait=(waited - before[1]) / (now - before[0]) if now > before[0] else 0.0,
            wait_share=self._config.autoscale.trainer_wait_share,
        )
        self._scaler.observe(sample)
        decision = self._scaler.decide(len(live))
        if decision.event is None or not decision.scale:
            return None
        if decision.target > decision.current:
            added = [self._add() for _ in range(decision.target - decision.current)]
            self._resizes.append((decision.event, added))
        else:
            # Idle ones first (starting before ready), newest first; busy ones end their shard.
            order = sorted(live, key=lambda w: (w.shard is not None, w.state == "ready", -w.rank))
            for worker in order[: decision.current - decision.target]:
                self._retire(worker)
            self._scaler.resize_completed(decision.event)
        return decision.event

    def _retire(self, worker: _Worker) -> None:
        if worker.shard is not None:
            worker.state = "retiring"
            return
        if worker.task is not None:
            worker.task.cancel()
        self._kill(worker)
        _log().info("rollout.worker_retired", rank=worker.rank, size=self.size)

    # -- tasks and failures --------------------------------------------------------------------
    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())  # type: ignore[arg-type]

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
            _log().error("rollout.pool_failed", error=str(error))
        for future in self._futures.values():
            if not future.done():
                future.set_exception(error)
