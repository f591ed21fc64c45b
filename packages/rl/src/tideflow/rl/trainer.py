"""The driver of an asynchronous RL run: roles as Ray actors, two loops, one buffer.

The *producer* loop takes a buffer slot, waits until the weights are fresh enough for the
batch, and hands its shards to the rollout pool (:mod:`tideflow.rl._rollout_pool`: any free
worker takes the next shard, with the newest published weights); when every shard is done
a reward worker scores the batch into the buffer. The next batch may start meanwhile. The
*consumer* loop takes batches in order, trains, publishes the new weights in chunks and
frees the slot. The driver holds object references only.

>>> result = RLTrainer(config).run()                                   # doctest: +SKIP
>>> result.steps[-1].reward_mean                                       # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import math
import os
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.core.ray_start import start_ray
from tideflow.rl._buffer import ExperienceBuffer
from tideflow.rl._data import PromptOrder, load_prompts
from tideflow.rl._metrics import StepMetrics, busy_ratio, step_metrics
from tideflow.rl._preflight import check_run
from tideflow.rl._result import RLResult, build_result
from tideflow.rl._reward import RewardWorker
from tideflow.rl._rollout_pool import RolloutPool
from tideflow.rl._trainer_actor import TrainerWorker
from tideflow.rl.config import RLConfig, config_to_dict
from tideflow.rl.errors import RLError, RoleFailedError

__all__ = ["RLResult", "RLTrainer", "Roles", "batch_seed", "train"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.driver")

StepCallback = (
    Callable[[StepMetrics, "RLTrainer"], Awaitable[None] | None]
    | Callable[[StepMetrics], Awaitable[None] | None]
)
"""Called after each step as ``callback(metrics, trainer)``, or ``callback(metrics)`` when
it takes one positional parameter; it runs on the driver's event loop, so it must not block
(an awaitable it returns, such as ``asyncio.sleep(1)``, is awaited before the next step)."""


def step_caller(
    callback: StepCallback,
) -> Callable[[StepMetrics, RLTrainer], Awaitable[None] | None]:
    """``callback`` called as ``(metrics, trainer)``: a callback that takes exactly one
    positional parameter gets ``metrics`` only (two arguments when its signature cannot be
    read)."""
    try:
        parameters = list(inspect.signature(callback).parameters.values())
    except (TypeError, ValueError):
        return callback  # type: ignore[return-value]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    takes_more = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    if takes_more or sum(p.kind in positional for p in parameters) != 1:
        return callback  # type: ignore[return-value]
    one = typing.cast(Callable[[StepMetrics], Awaitable[None] | None], callback)
    return lambda metrics, trainer: one(metrics)


@dataclass
class Roles:
    """The actor handles of a running trainer (tests inject faults through them)."""

    trainer: Any = None
    buffer: Any = None
    pool: RolloutPool | None = None
    """The rollout workers."""
    reward: list[Any] = field(default_factory=list)

    @property
    def rollout(self) -> list[Any]:
        """The rollout workers' handles now (the pool may change them)."""
        return self.pool.handles if self.pool is not None else []


ROLES_WAIT_REPORT_S = 10.0
"""While a role is not up yet (waiting for resources, loading its model), it is reported
this often."""


async def _all(refs: list[Any]) -> None:
    """Await every ref in ``refs`` (the first failure raises), then empty the list."""
    if refs:
        await asyncio.gather(*refs)
        refs.clear()


def batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch ``index`` in a run seeded with ``seed`` (the same after a
    resume, so a regenerated batch is drawn like the lost one)."""
    return (seed * 1_000_003 + index * 7_919) % (2**31 - 1)


def train(config: RLConfig, *, on_step: StepCallback | None = None) -> RLResult:
    """Run ``config`` to its ``total_steps`` (resuming from its checkpoint when there is one)."""
    return RLTrainer(config, on_step=on_step).run()


class RLTrainer:
    """One run of :class:`RLConfig` on the current Ray (started with defaults if none)."""

    def __init__(self, config: RLConfig, *, on_step: StepCallback | None = None) -> None:
        self.config = config
        self.on_step = on_step
        self._call_on_step: Callable[[StepMetrics, RLTrainer], Awaitable[None] | None] | None
        self._call_on_step = None
        self.roles = Roles()
        items = load_prompts(config.data)
        check_run(config, items)  # fail here, with the field's name, not in an actor
        self._order = PromptOrder(
            items,
            per_step=config.data.prompts_per_step,
            shuffle=config.data.shuffle,
            seed=config.seed,
        )
        self._new_run()

    def _new_run(self) -> None:
        """The state of one run (a second :meth:`run` starts from a clean slate, resuming
        from the checkpoint when the config has one, like a new trainer)."""
        self._published: dict[str, Any] | None = None
        self._published_changed = asyncio.Event()
        self._last_sync_s = 0.0
        self._stored: set[int] = set()
        """Batches in the buffer, scored (or restored)."""
        self._scored: dict[int, Any] = {}
        """Refs of scored batches not yet trained, by index (the trainer reads them here)."""
        self._needed: int | None = None
        """The step the trainer is at (waiting for its batch, or training on it)."""
        self._wait_since: float | None = None
        self._waited_s = 0.0
        self._failed: asyncio.Future[None] | None = None
        self._stopping = False
        self._rollout_intervals: list[tuple[float, float]] = []
        self._trainer_intervals: list[tuple[float, float]] = []
        self._t0 = 0.0
        self._steps: list[StepMetrics] = []
        self._metrics_file: Any = None

    # -- roles -----------------------------------------------------------------------------
    def _start_roles(self) -> None:
        import ray

        cfg = self.config
        needed = (
            cfg.trainer.num_cpus
            + cfg.rollout.num_cpus * cfg.rollout.largest_pool
            + cfg.reward.num_cpus * cfg.reward.num_workers
        )
        # Unless Ray runs already: a local one with enough logical CPUs for every role, even
        # on 2 cores; a Ctrl-C while it starts leaves none of its processes running.
        start_ray(
            num_cpus=max(os.cpu_count() or 1, math.ceil(needed)),
            include_dashboard=False,
            log_to_driver=False,
        )
        trainer_cls = ray.remote(TrainerWorker).options(
            num_cpus=cfg.trainer.num_cpus, num_gpus=cfg.trainer.num_gpus
        )
        self.roles.trainer = trainer_cls.remote(cfg)
        self.roles.pool = RolloutPool(cfg, trainer_waited=self.trainer_waited)
        reward_cls = ray.remote(RewardWorker).options(
            num_cpus=cfg.reward.num_cpus, num_gpus=cfg.reward.num_gpus
        )
        self.roles.reward = [reward_cls.remote(cfg.reward) for _ in range(cfg.reward.num_workers)]
        buffer_cls = ray.remote(ExperienceBuffer).options(num_cpus=0, max_concurrency=64)
        self.roles.buffer = buffer_cls.remote(cfg.buffer_size, cfg.staleness_limit)

    def _stop_roles(self) -> None:
        import ray

        if self.roles.pool is not None:
            self.roles.pool.close()
        for handle in [self.roles.trainer, self.roles.buffer, *self.roles.reward]:
            if handle is not None:
                ray.kill(handle)
        self.roles = Roles()

    def stop(self) -> None:
        """End the run after the step in progress (call it from ``on_step``): the result
        has the steps done so far; batches generated beyond them are dropped."""
        self._stopping = True
        _log().info("rl_run_stopping")

    def trainer_waited(self) -> float:
        """Seconds the trainer has waited for samples (its next batch not yet in the buffer)
        so far in this run."""
        since = self._wait_since
        return self._waited_s + (time.time() - since if since is not None else 0.0)

    def _batch_stored(self, index: int) -> None:
        self._stored.add(index)
        if index == self._needed and self._wait_since is not None:
            self._waited_s += time.time() - self._wait_since
            self._wait_since = None

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> RLResult:
        """Run to ``total_steps``; :class:`RoleFailedError` when a role dies or fails."""
        return asyncio.run(self.run_async())

    async def run_async(self) -> RLResult:
        """:meth:`run` for callers already inside an event loop."""
        import ray

        self._new_run()
        self._call_on_step = step_caller(self.on_step) if self.on_step is not None else None
        self._failed = asyncio.get_running_loop().create_future()
        cfg = self.config
        self._start_roles()
        pool = self.roles.pool
        assert pool is not None
        try:
            try:
                await self._roles_started(
                    trainer=self.roles.trainer.start.remote(),
                    rollout=pool.start(),
                    reward=asyncio.gather(*(w.start.remote() for w in self.roles.reward)),
                )
                restored = await self._restore()
                self._t0 = time.time()
                if restored is None:
                    first_step, batches = 0, list[int]()
                else:
                    first_step, batches = restored
                todo = [b for b in range(first_step, cfg.total_steps) if b not in batches]
                self._open_log(first_step)
                producer = asyncio.create_task(self._produce(todo))
                consumer = asyncio.create_task(self._consume(first_step))
                waiting: set[asyncio.Future[None]] = {producer, consumer, self._failed}
                while not (consumer.done() and (producer.done() or self._stopping)):
                    done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # raises the first failure
                trained = await self.roles.trainer.trained.remote()
                version = await self.roles.trainer.version.remote()
                stats = await self.roles.buffer.stats.remote()
            except (ray.exceptions.RayError, RLError) as error:
                if isinstance(error, RoleFailedError):
                    raise
                raise RoleFailedError(f"the RL run failed: {error}") from error
        finally:
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()
            self._stop_roles()
            if self._metrics_file is not None:
                self._metrics_file.close()
                self._metrics_file = None
        return self._result(trained, version, stats, restored, pool)

    async def _roles_started(self, **starts: Awaitable[Any]) -> None:
        """Wait for every role to be up (models loaded). A role Ray cannot place yet (it
        asks for GPUs or CPUs the cluster does not have free) would make this wait
        silently: every ``ROLES_WAIT_REPORT_S`` the roles still starting are logged with
        what they reserve and what the cluster has."""
        import ray

        cfg = self.config
        needs = {
            "trainer": {"CPU": cfg.trainer.num_cpus, "GPU": cfg.trainer.num_gpus},
            "rollout": {
                "CPU": cfg.rollout.num_cpus * cfg.rollout.num_workers,
                "GPU": cfg.rollout.num_gpus * cfg.rollout.num_workers,
            },
            "reward": {
                "CPU": cfg.reward.num_cpus * cfg.reward.num_workers,
                "GPU": cfg.reward.num_gpus * cfg.reward.num_workers,
            },
        }
        tasks = {role: asyncio.ensure_future(start) for role, start in starts.items()}
        waited = 0.0
        try:
            while True:
                done, pending = await asyncio.wait(
                    tasks.values(), timeout=ROLES_WAIT_REPORT_S, return_when=asyncio.FIRST_EXCEPTION
                )
                for task in done:
                    task.result()  # a role that failed to start fails the run now
                if not pending:
                    return
                waited += ROLES_WAIT_REPORT_S
                starting = sorted(role for role, task in tasks.items() if task in pending)
                _log().warning(
                    "rl_roles_waiting",
                    roles=starting,
                    waited_s=round(waited, 1),
                    needs={role: needs[role] for role in starting if role in needs},
                    cluster=ray.cluster_resources(),
                    available=ray.available_resources(),
                )
        finally:
            for task in tasks.values():
                task.cancel()

    async def _restore(self) -> tuple[int, list[int]] | None:
        cfg = self.config.checkpoint
        if cfg.uri is None or not cfg.resume:
            return None
        info = await self.roles.trainer.restore.remote(cfg.uri)
        if info is None:
            return None
        step = int(info["step"])
        batches = await self.roles.buffer.restore.remote(info["buffer"])
        self._stored.update(batches)
        await self._publish()
        _log().info("rl_run_resumed", step=step, buffer_batches=batches)
        return step, list(batches)

    async def _publish(self) -> dict[str, Any]:
        published: dict[str, Any] = await self.roles.trainer.publish.remote(
            self.config.sync.chunk_bytes
        )
        self._note_published(published)
        return published

    def _note_published(self, published: dict[str, Any]) -> None:
        """Offer the trainer's newly published weights to the rollout pool."""
        self._published = published
        self._trainer_intervals.append(tuple(published["interval"]))
        assert self.roles.pool is not None
        self.roles.pool.publish(int(published["version"]), published["chunks"])
        self._published_changed.set()

    async def _wait_for_version(self, version: int) -> None:
        while (self._published["version"] if self._published else 0) < version:
            self._published_changed.clear()
            await self._published_changed.wait()

    def _batch_seed(self, index: int) -> int:
        return batch_seed(self.config.seed, index)

    async def _produce(self, todo: list[int]) -> None:
        cfg = self.config
        batches = []
        for index in todo:
            await self.roles.buffer.reserve.remote(index)
            # The batch is trained at version `index`: its weights may lag by the limit.
            await self._wait_for_version(index - cfg.staleness_limit)
            batch = asyncio.create_task(self._produce_batch(index))
            batch.add_done_callback(self._watch)
            batches.append(batch)
            if cfg.reward.inline:  # scoring on the critical path: the scored batch is in
                await batch  # the buffer before the next batch starts
        await asyncio.gather(*batches)

    async def _produce_batch(self, index: int) -> None:
        """Generate batch ``index`` in the pool, then have it scored into the buffer."""
        assert self.roles.pool is not None
        parts, shards = await self.roles.pool.generate(
            index, self._order.batch(index), self._batch_seed(index)
        )
        self._rollout_intervals.extend(tuple(m["interval"]) for m in shards)
        loads = [float(m["load_s"]) for m in shards if float(m["load_s"]) > 0]
        if loads and self._published is not None:
            self._last_sync_s = float(self._published["publish_s"]) + max(loads)
        await self._submit_scoring(index, parts)
        self._batch_stored(index)

    def _submit_scoring(self, index: int, parts: list[Any]) -> Any:
        """Hand the generated parts of batch ``index`` to a reward worker; returns the ref
        of the buffer's ``put`` of the scored batch (scoring runs off the critical path)."""
        scorer = self.roles.reward[index % len(self.roles.reward)]
        scored = scorer.score.remote(index, *parts)
        self._scored[index] = scored  # the trainer gets it from here, not from the buffer
        return self.roles.buffer.put.remote(scored)

    def _watch(self, task: asyncio.Task[None]) -> None:
        """A failed batch fails the run at once (the producer may be waiting for a slot)."""
        if task.cancelled() or task.exception() is None:
            return
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(task.exception())  # type: ignore[arg-type]

    async def _consume(self, first_step: int) -> None:
        cfg = self.config
        # The buffer's bookkeeping of a trained step (taking the batch out, freeing its slot)
        # is awaited while the next step trains, not between the two.
        pending: list[Any] = []
        for step in range(first_step, cfg.total_steps):
            if self._stopping:
                break
            self._needed = step
            if step not in self._stored:
                self._wait_since = time.time()
            # The scored batch goes to the trainer from this process, which holds it since
            # it handed it to the buffer (one hop, not buffer → driver → trainer); the buffer
            # only lets go of it. A batch restored from a checkpoint comes from the buffer.
            scored = self._scored.pop(step, None)
            taken = self.roles.buffer.take.remote(step, step, scored is None)
            # one call trains and publishes: the trainer waits on the driver once per step
            training = self.roles.trainer.train.remote(
                taken if scored is None else scored, cfg.sync.chunk_bytes
            )
            await _all(pending)
            metrics = await training
            self._needed = None  # trained: the trainer waits for nothing until the next step
            if scored is not None:
                pending.append(taken)  # its checks (the staleness limit) fail the run
            pending.append(self.roles.buffer.release.remote(step))
            self._stored.discard(step)
            self._trainer_intervals.append(tuple(metrics["interval"]))
            published = metrics.pop("published")
            self._note_published(published)
            tokens = metrics.pop("tokens")
            done = step + 1
            if cfg.checkpoint.uri is not None and (
                done % cfg.checkpoint.every_steps == 0 or done == cfg.total_steps
            ):
                await _all(pending)  # the snapshot holds exactly the batches not trained
                snapshot = self.roles.buffer.snapshot.remote()
                await self.roles.trainer.checkpoint.remote(
                    cfg.checkpoint.uri,
                    cfg.checkpoint.retain,
                    done,
                    snapshot,
                    {"step": done, "config": config_to_dict(cfg)},
                )
            pause = self._record(step, metrics, published, tokens)
            if pause is not None:
                await pause
        await _all(pending)

    def _record(
        self,
        step: int,
        metrics: dict[str, Any],
        published: dict[str, Any],
        tokens: dict[str, Any],
    ) -> Awaitable[None] | None:
        now = time.time()
        record = step_metrics(
            step,
            metrics,
            published,
            tokens,
            weight_sync_s=self._last_sync_s,
            trainer_idle_ratio=1.0 - busy_ratio(self._trainer_intervals, self._t0, now),
            rollout_idle_ratio=1.0 - busy_ratio(self._rollout_intervals, self._t0, now),
            wall_s=now - self._t0,
            rollout_workers=self.roles.pool.size if self.roles.pool is not None else 0,
        )
        self._steps.append(record)
        if self._metrics_file is not None:
            self._metrics_file.write(json.dumps(record.as_dict()) + "\n")
            self._metrics_file.flush()
        _log().info(
            "rl_step",
            step=step,
            reward=round(record.reward_mean, 4),
            loss=round(record.loss, 5),
            max_lag=record.max_lag,
        )
        if self._call_on_step is not None:
            return self._call_on_step(record, self)
        return None

    # -- output ----------------------------------------------------------------------------
    def _open_log(self, first_step: int) -> None:
        out = self.config.output.dir
        if out is None:
            return
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "metrics.jsonl"
        mode = "a" if first_step > 0 else "w"
        self._metrics_file = path.open(mode, encoding="utf-8")

    def _result(
        self,
        trained: list[list[int]],
        version: int,
        stats: dict[str, float],
        restored: tuple[int, list[int]] | None,
        pool: RolloutPool,
    ) -> RLResult:
        return build_result(
            self.config,
            self._steps,
            trained_prompt_ids=trained,
            resumed_from=restored[0] if restored else None,
            restored_batches=restored[1] if restored else [],
            final_version=version,
            buffer_stats=stats,
            scale_events=pool.events,
            rollout_restarts=pool.restarts,
        )
