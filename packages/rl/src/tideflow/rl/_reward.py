"""Reward workers: a Python function or a reward model scores each sample, apart from the
rollout workers."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tideflow.rl._data import Batch, Sample
from tideflow.rl.config import RewardConfig, RewardModelConfig
from tideflow.rl.config._reward import TEMPLATE_FIELDS, template_fields
from tideflow.rl.errors import ConfigError, RLError

if TYPE_CHECKING:
    from tideflow.rl._reward_model import RewardModelScorer

__all__ = ["RewardWorker", "check_reward", "resolve_reward"]

RewardFn = Callable[[Mapping[str, Any], str], float]


def resolve_reward(target: str | None) -> RewardFn:
    """The function named ``"module:function"``; :class:`ConfigError` when it is not there
    (``None``, as when a reward model scores instead, included)."""
    if target is None:
        message = (
            "RewardConfig.function is None: a reward model scores, which a driver must start "
            "with RewardWorker(config.reward) after check_reward(config.reward)"
        )
        raise ConfigError(message)
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


def check_reward(config: RewardConfig, items: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Raise :class:`ConfigError` now, in the driver, for what a reward worker would fail
    on: a function it could not import; a local reward model folder without config.json, or
    a classifier ``label`` the model lacks; a template field that neither the worker
    (``{prompt}``, ``{response}``) nor every one of the prompt ``items`` fills."""
    if config.model is None:
        resolve_reward(config.function)
        return
    model = config.model
    if model.base_url is None:
        _check_model_folder(model)
    if model.template is not None and items is not None:
        _check_template(model.template, items)


def _check_model_folder(model: RewardModelConfig) -> None:
    config_file = Path(model.path) / "config.json"
    if not config_file.is_file():
        message = (
            f"RewardModelConfig.path {model.path!r} is not a model folder (no config.json in "
            "it); expected a local Hugging Face model folder (config.json, the weights, the "
            "tokenizer)"
        )
        raise ConfigError(message)
    if model.kind != "classifier":
        return
    try:
        hf_config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"RewardModelConfig.path: cannot read {config_file}: {error}") from error
    id2label = hf_config.get("id2label")
    labels = len(id2label) if isinstance(id2label, dict) else hf_config.get("num_labels")
    if isinstance(labels, int) and not 0 <= model.label < labels:
        message = (
            f"RewardModelConfig.label must be in 0..{labels - 1}: the classifier at "
            f"{model.path!r} has {labels} labels; got {model.label}"
        )
        raise ConfigError(message)


def _check_template(template: str, items: Sequence[Mapping[str, Any]]) -> None:
    filled = set(TEMPLATE_FIELDS).union(*(set(item) for item in items[:1]))
    for item in items[1:]:
        filled &= set(TEMPLATE_FIELDS) | set(item)
    unknown = sorted(template_fields(template) - filled)
    if unknown:
        message = (
            f"RewardModelConfig.template {template!r} has fields {unknown} that a reward "
            f"worker does not fill; expected {{prompt}}, {{response}} or fields every prompt "
            f"item has ({sorted(filled - set(TEMPLATE_FIELDS))})"
        )
        raise ConfigError(message)


class RewardWorker:
    """Scores whole batches with a rule function or a reward model; runs as a Ray actor, so
    scoring never blocks generation. ``spec`` is the whole :class:`RewardConfig`,
    or, as before, only a function's ``"module:function"``."""

    def __init__(self, spec: str | RewardConfig) -> None:
        config = spec if isinstance(spec, RewardConfig) else RewardConfig(function=spec)
        self.config = config
        self.function = config.function
        self._fn = resolve_reward(config.function) if config.function is not None else None
        self._model: RewardModelScorer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if config.model is not None:
            from tideflow.rl._reward_model import RewardModelScorer

            self._model = RewardModelScorer(config)
            # The model's engine is async; its calls all run on this one loop, so what it
            # binds to a loop (locks, HTTP clients) stays valid from call to call.
            self._loop = asyncio.new_event_loop()
        self.busy_s = 0.0

    def start(self) -> None:
        """Load the reward model, if any (scoring loads it otherwise, on the first batch)."""
        if self._model is not None:
            assert self._loop is not None
            self._loop.run_until_complete(self._model.start())

    def score(self, index: int, *parts: Mapping[str, Any]) -> Batch:
        """Score the rollout workers' parts of batch ``index`` into one :class:`Batch`."""
        started = time.perf_counter()
        samples = [Sample.from_dict(data) for part in parts for data in part["samples"]]
        if self._model is not None:
            assert self._loop is not None
            values = self._loop.run_until_complete(self._model.score(samples))
            source = f"the {self._model.model.kind} reward model"
        else:
            assert self._fn is not None
            fn = self._fn
            values = [float(fn(s.item, s.response_text)) for s in samples]
            source = f"reward {self.function}"
        scored = []
        for sample, value in zip(samples, values, strict=True):
            if math.isnan(value):
                raise RLError(f"{source} returned NaN for prompt {sample.prompt_id}")
            scored.append(dataclasses.replace(sample, reward=float(value)))
        seconds = time.perf_counter() - started
        self.busy_s += seconds
        return Batch(
            index=index,
            samples=scored,
            generate_s=max(float(p["generate_s"]) for p in parts),
            reward_s=seconds,
            intervals=[tuple(p["interval"]) for p in parts],
        )

    def close(self) -> None:
        """Release the reward model and its loop (an actor that is killed needs none of it)."""
        if self._model is not None and self._loop is not None:
            self._loop.run_until_complete(self._model.shutdown())
            self._loop.close()
            self._model = self._loop = None

    def stats(self) -> dict[str, Any]:
        """Seconds spent scoring and, with a model, the calls made and their sizes."""
        out: dict[str, Any] = {"busy_s": self.busy_s}
        if self._model is not None:
            out["calls"] = self._model.calls
            out["call_sizes"] = list(self._model.call_sizes)
        return out
