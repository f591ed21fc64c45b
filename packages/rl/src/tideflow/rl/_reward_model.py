"""A reward model as a scorer of samples: texts from a template, calls of ``batch_size``.

The model is served through :mod:`tideflow.streaming.llm`'s scoring engines (a sequence
classifier, or a generative judge over any engine, the OpenAI-protocol one included); this
module only turns samples into texts and a batch into calls.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.rl._data import Sample
from tideflow.rl.config import RewardConfig, RewardModelConfig
from tideflow.rl.errors import ConfigError, RLError

__all__ = ["RewardModelScorer", "reward_text", "scorer_config"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.reward")

CLASSIFIER_TEMPLATE = "{prompt} {response}"
JUDGE_TEMPLATE = (
    "Rate the response to the prompt with a number from 0 to 1.\n"
    "Prompt: {prompt}\nResponse: {response}\nScore:"
)


def template_of(model: RewardModelConfig) -> str:
    """The template a model scores with (its own, or its kind's default)."""
    if model.template is not None:
        return model.template
    return CLASSIFIER_TEMPLATE if model.kind == "classifier" else JUDGE_TEMPLATE


def reward_text(
    template: str, item: Mapping[str, Any], response: str, prompt_text: str = ""
) -> str:
    """``template`` filled with the prompt item's fields, ``{prompt}`` and ``{response}``;
    ``{prompt}`` is the item's ``prompt``, else ``prompt_text`` (a token-id prompt, decoded
    by the rollout worker)."""
    fields = {**item, "prompt": item.get("prompt", prompt_text), "response": response}
    try:
        return template.format_map(fields)
    except (KeyError, IndexError, ValueError) as error:
        message = (
            f"RewardModelConfig.template {template!r} cannot be filled from the prompt item "
            f"(fields {sorted(fields)}): {error!r}"
        )
        raise ConfigError(message) from error


def scorer_config(model: RewardModelConfig, batch_size: int) -> Any:
    """The :mod:`tideflow.streaming.llm` scoring config of ``model``."""
    from tideflow.streaming.llm import (
        ClassifierEngineConfig,
        JudgeConfig,
        OpenAIEngineConfig,
        TransformersEngineConfig,
    )

    if model.kind == "classifier":
        return ClassifierEngineConfig(
            model_source=model.path,
            label=model.label,
            device=model.device,
            dtype=model.dtype,
            max_batch_size=batch_size,
            num_threads=model.num_threads,
        )
    engine: Any
    if model.base_url is not None:
        engine = OpenAIEngineConfig(model_source=model.path, base_url=model.base_url)
    else:
        engine = TransformersEngineConfig(
            model_source=model.path,
            device=model.device,
            dtype=model.dtype,
            max_batch_size=batch_size,
            num_threads=model.num_threads,
        )
    return JudgeConfig(
        engine=engine, max_tokens=model.max_tokens, unparsed_score=model.unparsed_score
    )


class RewardModelScorer:
    """Scores samples with a reward model, ``batch_size`` samples per call (async)."""

    def __init__(self, config: RewardConfig) -> None:
        if config.model is None:
            raise ConfigError("RewardModelScorer needs RewardConfig.model; got None")
        self.config = config
        self.model: RewardModelConfig = config.model
        self.template = template_of(config.model)
        self._scorer: Any = None
        self._starting = asyncio.Lock()
        self.calls = 0
        """Calls made into the model (each of at most ``batch_size`` samples)."""
        self.call_sizes: list[int] = []
        """Samples per call, in order."""

    async def start(self) -> None:
        """Load the model (once; later calls return at once)."""
        async with self._starting:
            if self._scorer is not None:
                return
            from tideflow.streaming.llm import create_scorer

            started = time.perf_counter()
            scorer = create_scorer(scorer_config(self.model, self.config.batch_size))
            await scorer.start()
            self._scorer = scorer
            _log().info(
                "reward_model_loaded",
                kind=self.model.kind,
                path=self.model.path,
                seconds=round(time.perf_counter() - started, 3),
            )

    def texts(self, samples: Sequence[Sample]) -> list[str]:
        """What the model scores for each sample."""
        return [reward_text(self.template, s.item, s.response_text, s.prompt_text) for s in samples]

    async def score(self, samples: Sequence[Sample]) -> list[float]:
        """One score per sample, in calls of at most ``batch_size`` samples."""
        await self.start()
        from tideflow.streaming.llm import ScoreError

        texts = self.texts(samples)
        size = self.config.batch_size
        scores: list[float] = []
        for first in range(0, len(texts), size):
            part = texts[first : first + size]
            try:
                scores.extend(await self._scorer.score(part))
            except ScoreError as error:
                raise RLError(f"the reward model failed: {error}") from error
            if self.model.stand_in_latency_s:
                await asyncio.sleep(self.model.stand_in_latency_s)
            self.calls += 1
            self.call_sizes.append(len(part))
        return scores

    async def shutdown(self) -> None:
        if self._scorer is not None:
            await self._scorer.shutdown()
            self._scorer = None
