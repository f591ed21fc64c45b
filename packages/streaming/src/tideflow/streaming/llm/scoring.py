"""Scoring engines: a number per text, from a classifier or from a generative judge.

Reward models are served like any other model of the LLM operator. Two kinds:

- :class:`ClassifierEngine` — a local ``transformers`` ``*ForSequenceClassification`` model
  (CPU or GPU) scores texts in batches of ``max_batch_size``: the score is the logit of
  ``label``. It is an :class:`~tideflow.streaming.llm.Engine` (loaded in :meth:`start`,
  one call at a time off the event loop) whose :meth:`~ClassifierEngine.score` replaces
  generation.
- :class:`JudgeScorer` — any generating engine of :mod:`tideflow.streaming.llm`
  (``transformers``, ``vllm``, ``sglang``, ``openai``) is asked, greedily, to answer each
  text (a judge prompt), and the first number of its answer is the score.

Both follow :class:`Scorer`; :func:`create_scorer` builds one from its config.

>>> scorer = create_scorer(ClassifierEngineConfig(model_source="/models/rm"))  # doctest: +SKIP
>>> await scorer.start(); await scorer.score(["3 5 7 = 9 1 3"])                # doctest: +SKIP
[0.42]
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from tideflow.core.observability import get_logger
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm._config import EngineConfig, SamplingParams
from tideflow.streaming.llm._engine import (
    Engine,
    GenerateRequest,
    GenerateResult,
    LLMError,
    RequestError,
    create_engine,
)
from tideflow.streaming.llm.engines._shared import InProcessEngine, load_pretrained, max_model_len

__all__ = [
    "ClassifierEngine",
    "ClassifierEngineConfig",
    "JudgeConfig",
    "JudgeScorer",
    "ScoreError",
    "Scorer",
    "build_tiny_classifier",
    "create_scorer",
]

_log = get_logger("tideflow.streaming.llm.scoring")


class ScoreError(LLMError):
    """A text could not be scored (a judge's answer holds no number, a failed request)."""


@runtime_checkable
class Scorer(Protocol):
    """Scores texts: one float per text, in order. Start before scoring."""

    async def start(self) -> None: ...

    async def score(self, texts: Sequence[str]) -> list[float]: ...

    async def shutdown(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class ClassifierEngineConfig(EngineConfig):
    """A local ``*ForSequenceClassification`` model (a reward model) run by ``transformers``.

    Needs ``pip install "tideflow-streaming[llm]"``.
    """

    kind: ClassVar[str] = "classifier"

    label: int = 0
    """The logit that is the score (0 for a one-label reward model)."""
    device: str = "cpu"
    """Torch device: ``"cpu"``, ``"cuda"``."""
    dtype: str = "float32"
    """Torch dtype name of the weights."""
    max_batch_size: int = 64
    """Most texts in one forward pass."""
    max_model_len: int | None = None
    """Longest text in tokens (longer ones are truncated from the left, keeping the end of
    the response); default: the model's ``max_position_embeddings``."""
    num_threads: int | None = None
    """Torch CPU threads in the process (``None``: torch's choice)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label < 0:
            raise ConfigError(f"ClassifierEngineConfig.label must be >= 0; got {self.label}")
        if self.max_batch_size < 1:
            message = (
                f"ClassifierEngineConfig.max_batch_size must be >= 1; got {self.max_batch_size}"
            )
            raise ConfigError(message)
        if self.num_threads is not None and self.num_threads < 1:
            message = f"ClassifierEngineConfig.num_threads must be >= 1; got {self.num_threads}"
            raise ConfigError(message)

    @property
    def default_num_gpus(self) -> float:
        return 1.0 if self.device.startswith("cuda") else 0.0


class ClassifierEngine(InProcessEngine):
    """A sequence-classification model in the actor's process; :meth:`score` is its work."""

    config: ClassifierEngineConfig

    def __init__(self, config: ClassifierEngineConfig) -> None:
        super().__init__(config)
        self.calls = 0
        """Forward passes made (tests and benchmarks read it)."""

    def _load(self) -> None:
        cfg = self.config
        self._model, self._tokenizer = load_pretrained(cfg, "AutoModelForSequenceClassification")
        labels = int(self._model.config.num_labels)
        if cfg.label >= labels:
            message = (
                f"ClassifierEngineConfig.label must be < the model's num_labels {labels}; "
                f"got {cfg.label}"
            )
            raise ConfigError(message)
        self._tokenizer.truncation_side = "left"
        pad = self._tokenizer.pad_token_id
        if pad is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        if self._model.config.pad_token_id is None:
            self._model.config.pad_token_id = self._tokenizer.pad_token_id
        self._max_len = max_model_len(self._model, cfg)
        _log.info(
            "llm_engine_loaded",
            engine="classifier",
            model=cfg.model_source,
            device=cfg.device,
            num_labels=labels,
        )

    async def score(self, texts: Sequence[str]) -> list[float]:
        """The ``label`` logit of each text, in forward passes of ≤ ``max_batch_size``."""
        if self._model is None:
            raise LLMError("ClassifierEngine.score before start()")
        size = self.config.max_batch_size
        scores: list[float] = []
        async with self._lock:
            for first in range(0, len(texts), size):
                part = list(texts[first : first + size])
                scores.extend(await asyncio.to_thread(self._score_chunk, part))
        return scores

    def _score_chunk(self, texts: list[str]) -> list[float]:
        import torch

        self._tokenizer.padding_side = "right"
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_len, return_tensors="pt"
        ).to(self.config.device)
        with torch.inference_mode():
            logits = self._model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        self.calls += 1
        values: list[float] = logits[:, self.config.label].float().cpu().tolist()
        return values

    async def generate(
        self, requests: Sequence[GenerateRequest]
    ) -> list[GenerateResult | BaseException]:
        error = RequestError("a classifier engine scores texts (score()); it does not generate")
        return [error for _ in requests]

    async def shutdown(self) -> None:
        self._model = None


@dataclass(frozen=True, kw_only=True)
class JudgeConfig:
    """A generative judge: any engine config, asked greedily; the first number answered is
    the score. Each text scored is the whole judge prompt."""

    engine: EngineConfig
    """The engine that answers (``TransformersEngineConfig``, ``OpenAIEngineConfig``, …)."""
    max_tokens: int = 8
    """Most tokens of an answer."""
    pattern: str = r"-?\d+(?:\.\d+)?"
    """A regular expression; its first match in the answer is the score."""
    unparsed_score: float | None = None
    """The score of an answer with no match; ``None``: such an answer is a
    :class:`ScoreError`."""

    def __post_init__(self) -> None:
        if not isinstance(self.engine, EngineConfig):
            message = f"JudgeConfig.engine must be an engine config; got {self.engine!r}"
            raise ConfigError(message)
        if self.max_tokens < 1:
            raise ConfigError(f"JudgeConfig.max_tokens must be >= 1; got {self.max_tokens}")
        try:
            re.compile(self.pattern)
        except re.error as error:
            message = f"JudgeConfig.pattern is not a regular expression: {error}"
            raise ConfigError(message) from error

    @property
    def sampling(self) -> SamplingParams:
        """Greedy decoding of at most ``max_tokens``."""
        return SamplingParams(max_tokens=self.max_tokens, temperature=0.0)


class JudgeScorer:
    """Scores texts with a generating engine's answers (see :class:`JudgeConfig`)."""

    def __init__(self, config: JudgeConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine if engine is not None else create_engine(config.engine)
        self._pattern = re.compile(config.pattern)

    async def start(self) -> None:
        await self.engine.start()

    async def answers(self, texts: Sequence[str]) -> list[str]:
        """The engine's answer to each text (a failed request raises :class:`ScoreError`)."""
        sampling = self.config.sampling
        requests = [GenerateRequest(prompt=text, sampling=sampling) for text in texts]
        results = await self.engine.generate(requests)
        answers = []
        for text, result in zip(texts, results, strict=True):
            if isinstance(result, BaseException):
                raise ScoreError(f"the judge failed on {text[:80]!r}: {result}") from result
            answers.append(self._text(result))
        return answers

    def _text(self, result: GenerateResult) -> str:
        if result.text is not None:
            return result.text
        tokenizer = getattr(self.engine, "tokenizer", None)
        if tokenizer is None or result.token_ids is None:
            raise ScoreError("the judge's engine returned neither text nor decodable tokens")
        return str(tokenizer.decode(result.token_ids, skip_special_tokens=True))

    def parse(self, answer: str) -> float:
        """The score in one answer."""
        match = self._pattern.search(answer)
        if match is not None:
            try:
                return float(match.group(0))
            except ValueError:
                pass
        if self.config.unparsed_score is None:
            raise ScoreError(f"the judge's answer holds no score: {answer[:80]!r}")
        return self.config.unparsed_score

    async def score(self, texts: Sequence[str]) -> list[float]:
        return [self.parse(answer) for answer in await self.answers(texts)]

    async def shutdown(self) -> None:
        await self.engine.shutdown()


def create_scorer(config: ClassifierEngineConfig | JudgeConfig) -> Scorer:
    """The scorer ``config`` describes (nothing is loaded until ``start``)."""
    if isinstance(config, ClassifierEngineConfig):
        return ClassifierEngine(config)
    if isinstance(config, JudgeConfig):
        return JudgeScorer(config)
    message = f"create_scorer: expected a ClassifierEngineConfig or JudgeConfig; got {config!r}"
    raise ConfigError(message)


def build_tiny_classifier(
    path: str | Path,
    *,
    tokenizer_from: str | Path,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 128,
    num_labels: int = 1,
    seed: int = 0,
) -> Path:
    """Write a random-weight Qwen2 sequence classifier (a stand-in reward model) to ``path``,
    with the tokenizer of the model directory ``tokenizer_from``. Built at test time: no
    reward-model weights ship with anything installable here."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    tokenizer: Any = AutoTokenizer.from_pretrained(str(tokenizer_from))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=1,
        max_position_embeddings=256,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )
    config.num_labels = num_labels
    torch.manual_seed(seed)
    model = Qwen2ForSequenceClassification(config)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    _log.info(
        "tiny_classifier_built",
        path=str(out),
        hidden_size=hidden_size,
        num_layers=num_layers,
        seconds=round(time.perf_counter() - started, 3),
    )
    return out
