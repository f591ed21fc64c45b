"""What a run did (:class:`RLResult`), built from its step records and its output files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tideflow.core.observability import ScaleEvent
from tideflow.rl._metrics import StepMetrics, read_metrics, write_reward_curve
from tideflow.rl.config import RLConfig

__all__ = ["RLResult", "build_result"]


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
    scale_events: list[ScaleEvent] = field(default_factory=list)
    """The rollout pool's scale events (time, from → to size, reason, duration)."""
    rollout_restarts: int = 0
    """Rollout workers that died and were replaced (their prompts generated again)."""
    metrics_path: Path | None = None
    """The JSON-lines log, when ``output.dir`` was set."""
    curve_path: Path | None = None
    """The reward curve (PNG), when ``output.dir`` was set."""

    @property
    def rewards(self) -> list[float]:
        return [s.reward_mean for s in self.steps]


def build_result(config: RLConfig, steps: Sequence[StepMetrics], **figures: Any) -> RLResult:
    """The run's :class:`RLResult` from its steps and ``figures`` (the other fields but
    ``wall_s`` and the output paths); writes the reward curve when ``output.dir`` is set."""
    metrics_path = curve_path = None
    if config.output.dir is not None:
        metrics_path = Path(config.output.dir) / "metrics.jsonl"
        records = read_metrics(metrics_path)
        if records:
            title = f"reward per step (buffer_size={config.buffer_size})"
            curve_path = write_reward_curve(records, Path(config.output.dir) / "reward.png", title)
    return RLResult(
        steps=list(steps),
        wall_s=steps[-1].wall_s if steps else 0.0,
        metrics_path=metrics_path,
        curve_path=curve_path,
        **figures,
    )
