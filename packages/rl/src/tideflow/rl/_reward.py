"""Reward workers: a Python function scores each sample, apart from the rollout workers."""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from tideflow.rl._data import Batch, Sample
from tideflow.rl.errors import ConfigError, RLError

__all__ = ["RewardWorker", "resolve_reward"]

RewardFn = Callable[[Mapping[str, Any], str], float]


def resolve_reward(target: str) -> RewardFn:
    """The function named ``"module:function"``; :class:`ConfigError` when it is not there."""
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"RewardConfig.function: cannot import {module_name!r}: {error}"
        ) from error
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"RewardConfig.function: {module_name!r} has no function {name!r}")
    return fn


class RewardWorker:
    """Scores whole batches; runs as a Ray actor so scoring never blocks generation."""

    def __init__(self, function: str) -> None:
        self.function = function
        self._fn = resolve_reward(function)
        self.busy_s = 0.0

    def score(self, index: int, *parts: Mapping[str, Any]) -> Batch:
        """Score the rollout workers' parts of batch ``index`` into one :class:`Batch`."""
        started = time.perf_counter()
        samples = []
        for part in parts:
            for data in part["samples"]:
                sample = Sample.from_dict(data)
                value = float(self._fn(sample.item, sample.response_text))
                if math.isnan(value):
                    raise RLError(
                        f"reward {self.function} returned NaN for prompt {sample.prompt_id}"
                    )
                samples.append(Sample(**{**data, "reward": value}))
        seconds = time.perf_counter() - started
        self.busy_s += seconds
        return Batch(
            index=index,
            samples=samples,
            generate_s=max(float(p["generate_s"]) for p in parts),
            reward_s=seconds,
            intervals=[tuple(p["interval"]) for p in parts],
        )
