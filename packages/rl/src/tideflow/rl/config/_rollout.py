"""The rollout role: its workers, their generation engine and sampling, an elastic pool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tideflow.rl.config._checks import _check, _check_gpu_reserved


@dataclass(frozen=True, kw_only=True)
class RolloutAutoscaleConfig:
    """An elastic rollout pool, sized by :class:`tideflow.core.autoscaler.PoolScaler`.

    The pool grows while the trainer waits for samples (rollout is the bottleneck) and
    shrinks while the buffer stays full (rollout is ahead), deciding on a sliding window of
    samples and scaling at most once per ``debounce_s``, like the streaming pools.
    """

    min_workers: int = 1
    """Fewest rollout workers (>= 1)."""
    max_workers: int = 2
    """Most rollout workers (>= ``min_workers``)."""
    window_s: float = 5.0
    """Seconds of samples a decision looks at: up when, all through it, every worker was busy
    and the trainer waited for samples; down when at most half the workers were busy all
    through it and the trainer never waited."""
    debounce_s: float = 1.0
    """After a scale the pool does not scale again for this long (>= 0)."""
    sample_interval_s: float = 0.25
    """Seconds between two samples of the pool (> 0, < ``window_s``)."""
    trainer_wait_share: float = 0.25
    """Rollout counts as behind in a sampling interval when the trainer spent at least this
    share of it waiting for samples (0 < x <= 1)."""

    def __post_init__(self) -> None:
        where = "RolloutConfig.autoscale"
        _check(0 < self.trainer_wait_share <= 1, f"{where}.trainer_wait_share", "in (0, 1]",
               self.trainer_wait_share)  # fmt: skip
        for name in ("min_workers", "max_workers"):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool), f"{where}.{name}",
                   "an integer", value)  # fmt: skip
        _check(self.min_workers >= 1, f"{where}.min_workers", ">= 1", self.min_workers)
        _check(
            self.max_workers >= self.min_workers,
            f"{where}.max_workers",
            f">= min_workers ({self.min_workers})",
            self.max_workers,
        )
        _check(self.window_s > 0, f"{where}.window_s", "> 0", self.window_s)
        _check(self.debounce_s >= 0, f"{where}.debounce_s", ">= 0", self.debounce_s)
        _check(
            0 < self.sample_interval_s < self.window_s,
            f"{where}.sample_interval_s",
            f"> 0 and < window_s ({self.window_s})",
            self.sample_interval_s,
        )


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """Rollout workers: a generation engine each, ``samples_per_prompt`` samples per prompt."""

    engine: Literal["transformers", "vllm"] = "transformers"
    """``transformers`` (CPU or GPU, in the worker's process) or ``vllm`` (GPU)."""
    num_workers: int = 1
    """Rollout workers: the fixed pool's size; with ``autoscale``, the elastic pool's size at
    the start (within ``[min_workers, max_workers]``)."""
    autoscale: RolloutAutoscaleConfig | None = None
    """Make the pool elastic (``None``: a fixed pool of ``num_workers``)."""
    prompts_per_request: int | None = None
    """Prompts per work request (shard) a worker takes; any free worker takes the next one, so
    a pool change takes effect at once. ``None``: a batch is cut into one request per worker
    of the largest pool (``num_workers``, or ``autoscale.max_workers``)."""
    max_restarts: int = 3
    """Rollout workers that may die and be replaced in a run (their requests are generated
    again by a live worker) before the run fails."""
    partial_rollout: bool = False
    """Generate in segments of ``segment_tokens``; between two segments a worker loads newer
    published weights, so a long generation that spans a weight update continues with the
    new weights (each token keeps the version that produced it)."""
    segment_tokens: int = 8
    """Tokens per segment with ``partial_rollout``."""
    samples_per_prompt: int = 4
    """Samples generated per prompt (the group of GRPO/RLOO advantages)."""
    max_tokens: int = 16
    """Most tokens generated per sample."""
    temperature: float = 1.0
    """Sampling temperature (> 0); the trainer divides its logits by it too."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]."""
    top_k: int = 0
    """Sample among the ``top_k`` likeliest tokens; 0: no limit."""
    device: str = "cpu"
    """Torch device of a ``transformers`` engine (``cpu``, ``cuda``)."""
    max_batch_size: int = 256
    """Most requests in one ``generate`` call of a ``transformers`` engine."""
    num_cpus: float = 1.0
    """CPUs each worker reserves (Ray)."""
    num_gpus: float = 0.0
    """GPUs each worker reserves (Ray); a ``vllm`` worker needs 1."""
    num_threads: int | None = 1
    """Torch CPU threads in a worker (``None``: torch's choice)."""
    engine_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Passed to the engine as is (vLLM: ``gpu_memory_utilization``, ``enforce_eager`` …)."""

    def __post_init__(self) -> None:
        engines = ("transformers", "vllm")
        _check(self.engine in engines, "RolloutConfig.engine", f"one of {engines}", self.engine)
        for name in (
            "num_workers", "samples_per_prompt", "max_tokens", "max_batch_size", "segment_tokens",
        ):  # fmt: skip
            value = getattr(self, name)
            _check(value >= 1, f"RolloutConfig.{name}", ">= 1", value)
        if self.prompts_per_request is not None:
            _check(self.prompts_per_request >= 1, "RolloutConfig.prompts_per_request",
                   ">= 1 or None", self.prompts_per_request)  # fmt: skip
        _check(self.max_restarts >= 0, "RolloutConfig.max_restarts", ">= 0", self.max_restarts)
        scale = self.autoscale
        if scale is not None:
            _check(isinstance(scale, RolloutAutoscaleConfig), "RolloutConfig.autoscale",
                   "a RolloutAutoscaleConfig or None", scale)  # fmt: skip
            _check(
                scale.min_workers <= self.num_workers <= scale.max_workers,
                "RolloutConfig.num_workers",
                f"within autoscale's [min_workers, max_workers] = [{scale.min_workers}, "
                f"{scale.max_workers}] (the elastic pool starts at num_workers)",
                self.num_workers,
            )
        _check(self.temperature > 0, "RolloutConfig.temperature", "> 0", self.temperature)
        _check(0 < self.top_p <= 1, "RolloutConfig.top_p", "in (0, 1]", self.top_p)
        _check(self.top_k >= 0, "RolloutConfig.top_k", ">= 0", self.top_k)
        _check(self.num_cpus >= 0, "RolloutConfig.num_cpus", ">= 0", self.num_cpus)
        _check(self.num_gpus >= 0, "RolloutConfig.num_gpus", ">= 0", self.num_gpus)
        if self.num_threads is not None:
            _check(self.num_threads >= 1, "RolloutConfig.num_threads", ">= 1", self.num_threads)
        if self.engine == "transformers":
            _check_gpu_reserved(self.device, self.num_gpus, "RolloutConfig")

    @property
    def largest_pool(self) -> int:
        """The most rollout workers the run may have at once (``autoscale.max_workers``, or
        ``num_workers``): what to reserve CPUs and GPUs for."""
        return self.autoscale.max_workers if self.autoscale else self.num_workers
