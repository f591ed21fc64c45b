"""The driver of an asynchronous RL run: roles as Ray actors, two loops, one buffer.

The *producer* loop takes a buffer slot, loads the newest published weights into the
rollout workers (between requests), has them generate the next batch and hands it to a
reward worker, whose scored batch lands in the buffer — then starts the next batch while
scoring runs. The *consumer* loop takes batches in order, trains, publishes the new
weights in chunks and frees the slot. The driver holds object references only.

>>> result = RLTrainer(config).run()                                   # doctest: +SKIP
>>> result.steps[-1].reward_mean                                       # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.core.ray_start import start_ray
from tideflow.rl._buffer import ExperienceBuffer
from tideflow.rl._data import PromptOrder, load_prompts
from tideflow.rl._metrics import StepMetrics, busy_ratio, read_metrics, write_reward_curve
from tideflow.rl._reward import RewardWorker, resolve_reward
from tideflow.rl._rollout import RolloutWorker
from tideflow.rl._trainer_actor import TrainerWorker
from tideflow.rl.config import RLConfig, config_to_dict
from tideflow.rl.errors import RLError, RoleFailedError

__all__ = ["RLResult", "RLTrainer", "Roles", "batch_seed", "train"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.driver")

StepCallback = Callable[[StepMetrics, "RLTrainer"], None]


@dataclass
class Roles:
    """The actor handles of a running trainer (tests inject faults through them)."""

    trainer: Any = None
    buffer: Any = None
    rollout: list[Any] = field(default_factory=list)
    reward: list[Any] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RLResult:
    """What a run did."""

    steps: list[StepMetrics]
    """This run's steps (a resumed run: those after the checkpoint)."""
    trained_prompt_ids: list[list[int]]
    """Prompt ids of every step the final policy was trained on, from step 0 (the
    exactly-once ledger, carried through checkpoints)."""
    resumed_from: int | None
    """The checkpoint step this run resumed from, or ``None``."""
    restored_batches: list[int]
    """Batches restored into the buffer from the checkpoint (trained, not regenerated)."""
    final_version: int
    """The policy version at the end."""
    wall_s: float
    """Seconds from the roles being ready to the last step's end."""
    buffer_stats: dict[str, float]
    """Back-pressure and waiting figures of the buffer."""
    metrics_path: Path | None = None
    """The JSON-lines log, when ``output.dir`` was set."""
    curve_path: Path | None = None
    """The reward curve (PNG), when ``output.dir`` was set."""

    @property
    def rewards(self) -> list[float]:
        return [s.reward_mean for s in self.steps]


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
        self.roles = Roles()
        self._order = PromptOrder(
            load_prompts(config.data),
            per_step=config.data.prompts_per_step,
            shuffle=config.data.shuffle,
            seed=config.seed,
        )
        resolve_reward(config.reward.function)  # fail here, not in an actor
        self._published: dict[str, Any] | None = None
        self._published_changed = asyncio.Event()
        self._rollout_version = 0
        self._last_load_s = 0.0
        self._last_sync_s = 0.0
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
            + cfg.rollout.num_cpus * cfg.rollout.num_workers
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
        rollout_cls = ray.remote(RolloutWorker).options(
            num_cpus=cfg.rollout.num_cpus, num_gpus=cfg.rollout.num_gpus
        )
        self.roles.trainer = trainer_cls.remote(cfg)
        self.roles.rollout = [
            rollout_cls.remote(cfg.rollout, cfg.model, rank)
            for rank in range(cfg.rollout.num_workers)
        ]
        reward_cls = ray.remote(RewardWorker).options(num_cpus=cfg.reward.num_cpus)
        self.roles.reward = [
            reward_cls.remote(cfg.reward.function) for _ in range(cfg.reward.num_workers)
        ]
        buffer_cls = ray.remote(ExperienceBuffer).options(num_cpus=0, max_concurrency=64)
        self.roles.buffer = buffer_cls.remote(cfg.buffer_size, cfg.staleness_limit)

    def _stop_roles(self) -> None:
        import ray

        for handle in [
            self.roles.trainer,
            self.roles.buffer,
            *self.roles.rollout,
            *self.roles.reward,
        ]:
            if handle is not None:
                ray.kill(handle)
        self.roles = Roles()

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> RLResult:
        """Run to ``total_steps``; :class:`RoleFailedError` when a role dies or fails."""
        return asyncio.run(self.run_async())

    async def run_async(self) -> RLResult:
        """:meth:`run` for callers already inside an event loop."""
        import ray

        self._published_changed = asyncio.Event()
        cfg = self.config
        self._start_roles()
        try:
            try:
                starts = [self.roles.trainer.start.remote()]
                starts += [w.start.remote() for w in self.roles.rollout]
                await asyncio.gather(*starts)
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
                done, _ = await asyncio.wait(
                    [producer, consumer], return_when=asyncio.FIRST_EXCEPTION
                )
                for task in done:
                    task.result()  # raises the first failure
                await consumer
                await producer
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
        return self._result(
            trained,
            version,
            stats,
            restored[0] if restored else None,
            restored[1] if restored else [],
        )

    async def _restore(self) -> tuple[int, list[int]] | None:
        cfg = self.config.checkpoint
        if cfg.uri is None or not cfg.resume:
            return None
        info = await self.roles.trainer.restore.remote(cfg.uri)
        if info is None:
            return None
        step = int(info["step"])
        batches = await self.roles.buffer.restore.remote(info["buffer"])
        await self._publish()
        _log().info("rl_run_resumed", step=step, buffer_batches=batches)
        return step, list(batches)

    async def _publish(self) -> dict[str, Any]:
        published: dict[str, Any] = await self.roles.trainer.publish.remote(
            self.config.sync.chunk_bytes
        )
        self._published = published
        self._trainer_intervals.append(tuple(published["interval"]))
        self._published_changed.set()
        return published

    async def _sync(self) -> None:
        """Load the newest published weights into every rollout worker (between batches)."""
        published = self._published
        assert published is not None
        started_wall = time.time()
        loads = await asyncio.gather(
            *(
                w.load_weights.remote(published["version"], published["chunks"])
                for w in self.roles.rollout
            )
        )
        self._rollout_intervals.append((started_wall, time.time()))
        self._rollout_version = int(published["version"])
        self._last_load_s = max(float(x["load_s"]) for x in loads)
        self._last_sync_s = float(published["publish_s"]) + self._last_load_s

    async def _wait_for_version(self, version: int) -> None:
        while (self._published["version"] if self._published else 0) < version:
            self._published_changed.clear()
            await self._published_changed.wait()

    def _batch_seed(self, index: int) -> int:
        return batch_seed(self.config.seed, index)

    async def _produce(self, todo: list[int]) -> None:
        cfg = self.config
        workers = self.roles.rollout
        puts = []
        for index in todo:
            await self.roles.buffer.reserve.remote(index)
            # The batch is trained at version `index`: its weights may lag by the limit.
            await self._wait_for_version(index - cfg.staleness_limit)
            if self._published is not None and self._published["version"] != self._rollout_version:
                await self._sync()
            items = self._order.batch(index)
            shards = [items[r :: len(workers)] for r in range(len(workers))]
            parts = [
                w.generate.remote(index, shard, self._batch_seed(index))
                for w, shard in zip(workers, shards, strict=True)
                if shard
            ]
            scorer = self.roles.reward[index % len(self.roles.reward)]
            scored = scorer.score.remote(index, *parts)
            puts.append(self.roles.buffer.put.remote(scored))  # scoring runs on its own
            generated = await asyncio.gather(*parts)
            self._rollout_intervals.extend(tuple(g["interval"]) for g in generated)
        await asyncio.gather(*puts)

    async def _consume(self, first_step: int) -> None:
        cfg = self.config
        for step in range(first_step, cfg.total_steps):
            batch = self.roles.buffer.take.remote(step, step)  # a ref: data goes actor to actor
            metrics = await self.roles.trainer.train.remote(batch)
            self._trainer_intervals.append(tuple(metrics["interval"]))
            published = await self._publish()
            await self.roles.buffer.release.remote(step)
            done = step + 1
            if cfg.checkpoint.uri is not None and (
                done % cfg.checkpoint.every_steps == 0 or done == cfg.total_steps
            ):
                snapshot = self.roles.buffer.snapshot.remote()
                await self.roles.trainer.checkpoint.remote(
                    cfg.checkpoint.uri,
                    cfg.checkpoint.retain,
                    done,
                    snapshot,
                    {"step": done, "config": config_to_dict(cfg)},
                )
            self._record(step, metrics, published)

    def _record(self, step: int, metrics: dict[str, Any], published: dict[str, Any]) -> None:
        now = time.time()
        batch = metrics.pop("batch")
        rollout_busy = busy_ratio(self._rollout_intervals, self._t0, now)
        trainer_busy = busy_ratio(self._trainer_intervals, self._t0, now)
        known = {
            "loss", "kl", "behaviour_kl", "train_s", "version", "interval",
        }  # fmt: skip
        record = StepMetrics(
            step=step,
            version=int(metrics["version"]),
            reward_mean=batch["reward_mean"],
            reward_std=batch["reward_std"],
            loss=float(metrics["loss"]),
            kl=float(metrics["kl"]) if "kl" in metrics else None,
            behaviour_kl=float(metrics["behaviour_kl"]),
            staleness={int(k): int(v) for k, v in sorted(batch["staleness"].items())},
            samples=batch["samples"],
            response_len_mean=batch["response_len_mean"],
            generate_s=batch["generate_s"],
            reward_s=batch["reward_s"],
            train_s=float(metrics["train_s"]),
            publish_s=float(published["publish_s"]),
            weight_sync_s=self._last_sync_s,
            trainer_idle_ratio=1.0 - trainer_busy,
            rollout_idle_ratio=1.0 - rollout_busy,
            wall_s=now - self._t0,
            train_interval=tuple(metrics["interval"]),
            generate_intervals=[tuple(i) for i in batch["intervals"]],
            extra={k: float(v) for k, v in metrics.items() if k not in known},
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
        if self.on_step is not None:
            self.on_step(record, self)

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
        resumed_from: int | None,
        restored: list[int],
    ) -> RLResult:
        metrics_path = curve_path = None
        if self.config.output.dir is not None:
            metrics_path = Path(self.config.output.dir) / "metrics.jsonl"
            records = read_metrics(metrics_path)
            if records:
                title = f"reward per step (buffer_size={self.config.buffer_size})"
                curve_path = write_reward_curve(
                    records, Path(self.config.output.dir) / "reward.png", title
                )
        wall = self._steps[-1].wall_s if self._steps else 0.0
        return RLResult(
            steps=list(self._steps),
            trained_prompt_ids=trained,
            resumed_from=resumed_from,
            restored_batches=restored,
            final_version=version,
            wall_s=wall,
            buffer_stats=stats,
            metrics_path=metrics_path,
            curve_path=curve_path,
        )
