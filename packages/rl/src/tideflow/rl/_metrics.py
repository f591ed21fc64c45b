"""Per-step metrics, the JSON-lines log and the reward curve."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tideflow.rl._data import Sample

__all__ = [
    "StepMetrics",
    "busy_ratio",
    "read_metrics",
    "step_metrics",
    "token_staleness",
    "write_reward_curve",
]


@dataclass(frozen=True, kw_only=True)
class StepMetrics:
    """What one training step did and saw."""

    step: int
    """The step (= the batch index), from 0."""
    version: int
    """The policy version after the step."""
    reward_mean: float
    """Mean reward of the batch's samples."""
    reward_std: float
    """Standard deviation of those rewards."""
    loss: float
    """The loss optimized (policy loss + KL and entropy terms), mean over updates."""
    kl: float | None
    """KL to the reference model (``None`` without one: ``kl_coef = 0``)."""
    behaviour_kl: float
    """Mean of log π_behaviour − log π_θ over response tokens: how far the trained policy
    has moved from the policies that generated the batch."""
    staleness: dict[int, int]
    """Samples per lag (trainer version − sample version)."""
    samples: int
    """Samples trained on."""
    response_len_mean: float
    """Mean response length in tokens."""
    generate_s: float
    """Seconds the batch's generation took (slowest worker)."""
    reward_s: float
    """Seconds its scoring took."""
    train_s: float
    """Seconds the training step took."""
    publish_s: float
    """Seconds to publish the new weights (chunks into the object store)."""
    weight_sync_s: float
    """Seconds of the last complete weight sync: publish + load into the rollout workers."""
    trainer_idle_ratio: float
    """Share of the run so far the trainer spent neither training nor publishing."""
    rollout_idle_ratio: float
    """Share of the run so far the rollout workers spent neither generating nor loading."""
    wall_s: float
    """Seconds since the run's roles were ready."""
    train_interval: tuple[float, float]
    """Wall-clock (``time.time()``) start and end of the training step."""
    generate_intervals: list[tuple[float, float]]
    """Wall-clock start and end of each worker's generation of the batch."""
    extra: dict[str, float] = field(default_factory=dict)
    """verl's own metrics (clip fractions, importance-weight statistics, grad norm …)."""
    token_staleness: dict[int, int] = field(default_factory=dict)
    """Response tokens per lag (trainer version − the version that produced the token)."""
    mixed_version_samples: int = 0
    """Samples whose tokens come from more than one policy version (partial rollouts)."""
    rollout_workers: int = 0
    """Rollout workers in the pool (starting ones included) when the step ended."""

    @property
    def max_lag(self) -> int:
        return max(self.staleness, default=0)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["staleness"] = {str(k): v for k, v in self.staleness.items()}
        data["token_staleness"] = {str(k): v for k, v in self.token_staleness.items()}
        return data


_KNOWN = {"loss", "kl", "behaviour_kl", "train_s", "version", "interval"}


def step_metrics(
    step: int,
    trained: dict[str, Any],
    published: dict[str, Any],
    tokens: dict[str, Any],
    **run: Any,
) -> StepMetrics:
    """A step's record from the trainer's figures (``trained``, its ``batch`` included), the
    publish that followed, the buffer's per-token lags (``tokens``) and the run-level
    figures (``weight_sync_s``, ``trainer_idle_ratio``, ``rollout_idle_ratio``, ``wall_s``,
    ``rollout_workers``)."""
    batch = trained["batch"]
    return StepMetrics(
        step=step,
        version=int(trained["version"]),
        reward_mean=batch["reward_mean"],
        reward_std=batch["reward_std"],
        loss=float(trained["loss"]),
        kl=float(trained["kl"]) if "kl" in trained else None,
        behaviour_kl=float(trained["behaviour_kl"]),
        staleness={int(k): int(v) for k, v in sorted(batch["staleness"].items())},
        samples=batch["samples"],
        response_len_mean=batch["response_len_mean"],
        generate_s=batch["generate_s"],
        reward_s=batch["reward_s"],
        train_s=float(trained["train_s"]),
        publish_s=float(published["publish_s"]),
        train_interval=tuple(trained["interval"]),
        generate_intervals=[tuple(i) for i in batch["intervals"]],
        extra={k: float(v) for k, v in trained.items() if k not in _KNOWN and k != "batch"},
        token_staleness={int(k): int(v) for k, v in sorted(tokens["tokens"].items())},
        mixed_version_samples=int(tokens["mixed"]),
        **run,
    )


def token_staleness(samples: Iterable[Sample], version: int) -> dict[str, Any]:
    """Per-token lag figures of samples trained at policy ``version``: ``{"tokens": {lag:
    count}, "mixed": samples with tokens of several versions}``."""
    lags: Counter[int] = Counter()
    mixed = 0
    for sample in samples:
        versions = sample.versions_per_token()
        lags.update(version - v for v in versions)
        mixed += len(set(versions)) > 1
    return {"tokens": dict(sorted(lags.items())), "mixed": mixed}


def busy_ratio(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Share of ``[start, end]`` covered by at least one of ``intervals`` (overlaps, as
    several workers' intervals have, count once)."""
    if end <= start:
        return 0.0
    busy, reach = 0.0, start
    for first, last in sorted(intervals):
        a, b = max(first, reach), min(last, end)
        if b > a:
            busy += b - a
            reach = b
    return min(1.0, busy / (end - start))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The step records of a ``metrics.jsonl``; after a resume, the last record of a step wins."""
    by_step: dict[int, dict[str, Any]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if "step" in record:
                by_step[int(record["step"])] = record
    return [by_step[k] for k in sorted(by_step)]


def write_reward_curve(records: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """A PNG of the mean reward per step (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    means = [r["reward_mean"] for r in records]
    stds = [r.get("reward_std", 0.0) for r in records]
    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    axis.plot(steps, means, color="#1f6feb", label="reward (mean)")
    axis.fill_between(
        steps,
        [m - s for m, s in zip(means, stds, strict=True)],
        [m + s for m, s in zip(means, stds, strict=True)],
        color="#1f6feb",
        alpha=0.15,
        label="± 1 std",
    )
    axis.set_xlabel("training step")
    axis.set_ylabel("reward")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out
