"""Samples, batches and the prompt order: plain data, JSON-able for checkpoints."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tideflow.rl.config import DataConfig
from tideflow.rl.errors import ConfigError

__all__ = ["Batch", "PromptOrder", "Sample", "load_prompts"]


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One generated response, tagged with the policy version that generated it."""

    batch: int
    """Index of the batch (= the training step that will consume it)."""
    prompt_id: int
    """The prompt's ``id`` in the data set."""
    group: str
    """Samples of one prompt in one batch share it (GRPO/RLOO groups)."""
    prompt_token_ids: list[int]
    """The prompt, tokenized."""
    response_token_ids: list[int]
    """The generated tokens (end-of-sequence included when generation stopped on it)."""
    behaviour_logprobs: list[float]
    """Log-probability of each generated token under the generating policy."""
    version: int
    """The policy version (training steps applied) of the weights that generated it; with
    partial rollouts, that of its first (oldest) token, so lag is counted from there."""
    response_text: str = ""
    """The decoded response (special tokens skipped)."""
    finish_reason: str | None = None
    """``stop`` or ``length``."""
    reward: float | None = None
    """The reward, once a reward worker scored it."""
    item: Mapping[str, Any] = field(default_factory=dict)
    """The prompt's data item (what the reward function reads)."""
    prompt_text: str = ""
    """The prompt as text: the item's ``prompt``, or its ``prompt_token_ids`` decoded (special
    tokens skipped): what a reward model's template gets as ``{prompt}``."""
    token_versions: list[int] = field(default_factory=list)
    """The policy version of each response token: one version, unless a partial rollout
    spanned a weight update (then non-decreasing). Empty in samples saved before it existed:
    every token then has ``version``."""

    def versions_per_token(self) -> list[int]:
        """The policy version of each response token."""
        if self.token_versions:
            return list(self.token_versions)
        return [self.version] * len(self.response_token_ids)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "item": dict(self.item)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sample:
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class Batch:
    """The samples of one step, with what the rollout measured while generating them."""

    index: int
    """The batch index (= its training step)."""
    samples: list[Sample]
    """``prompts_per_step × samples_per_prompt`` samples, grouped by prompt."""
    generate_s: float = 0.0
    """Seconds the slowest rollout worker spent generating it."""
    reward_s: float = 0.0
    """Seconds its scoring took."""
    intervals: list[tuple[float, float]] = field(default_factory=list)
    """Wall-clock ``(start, end)`` of each worker's generation of it (``time.time()``)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "samples": [s.as_dict() for s in self.samples],
            "generate_s": self.generate_s,
            "reward_s": self.reward_s,
            "intervals": [list(i) for i in self.intervals],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        return cls(
            index=int(data["index"]),
            samples=[Sample.from_dict(s) for s in data["samples"]],
            generate_s=float(data.get("generate_s", 0.0)),
            reward_s=float(data.get("reward_s", 0.0)),
            intervals=[(float(a), float(b)) for a, b in data.get("intervals", [])],
        )


def load_prompts(config: DataConfig) -> list[dict[str, Any]]:
    """The data set's items, each with an integer ``id`` (the toy task when no path)."""
    if config.path is None:
        from tideflow.rl.toy import DigitTask

        return DigitTask().items(config.num_prompts, seed=1234)
    path = Path(config.path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"DataConfig.path: cannot read {str(path)!r}: {error}") from error
    items: list[dict[str, Any]] = []
    lines_of: dict[int, int] = {}  # id -> the line that has it
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{number}: not a JSON object: {error}") from error
        if not isinstance(item, dict) or not ("prompt" in item or "prompt_token_ids" in item):
            message = f"{path}:{number}: expected an object with 'prompt' or 'prompt_token_ids'"
            raise ConfigError(message)
        item.setdefault("id", len(items))
        _check_id(item["id"], path, number, lines_of)
        items.append(item)
    if not items:
        raise ConfigError(f"DataConfig.path: {path} holds no prompts")
    return items


def _check_id(value: Any, path: Path, number: int, lines_of: dict[int, int]) -> None:
    """A prompt's ``id`` is a unique integer: the ledger of trained prompts (exactly once,
    through resumes and lost workers) counts prompts by it."""
    if isinstance(value, bool) or not isinstance(value, int):
        message = (
            f"{path}:{number}: 'id' must be an integer (the prompt ledger counts prompts by "
            f"it; leave it out to number the prompts by position); got {value!r}"
        )
        raise ConfigError(message)
    if value in lines_of:
        message = (
            f"{path}:{number}: 'id' {value} is already the id of line {lines_of[value]}; "
            "ids must be unique (a prompt without one gets its position among the prompts)"
        )
        raise ConfigError(message)
    lines_of[value] = number


class PromptOrder:
    """Which prompts batch ``b`` holds: a pure function of the seed and ``b``.

    Positions ``b × per_step … (b + 1) × per_step − 1`` of the endless sequence of epochs,
    each epoch a seeded permutation of the data set. So a resumed run regenerates exactly
    the batches it had not trained, from nothing but the step counter (the data cursor).
    """

    def __init__(
        self, items: Sequence[Mapping[str, Any]], *, per_step: int, shuffle: bool, seed: int
    ) -> None:
        self._items = list(items)
        self._per_step = per_step
        self._shuffle = shuffle
        self._seed = seed
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self._items)))
            if self._shuffle:
                random.Random(self._seed * 1_000_003 + epoch).shuffle(order)
            self._orders = {epoch: order}  # one epoch at a time is enough
        return self._orders[epoch]

    def batch(self, index: int) -> list[Mapping[str, Any]]:
        """The data items of batch ``index``."""
        out = []
        for position in range(index * self._per_step, (index + 1) * self._per_step):
            epoch, offset = divmod(position, len(self._items))
            out.append(self._items[self._order(epoch)[offset]])
        return out
