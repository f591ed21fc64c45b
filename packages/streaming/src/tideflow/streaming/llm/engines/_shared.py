"""What the engines share: a batch's requests in flight at once under a bound (vLLM, SGLang,
OpenAI), embedding texts in chunks, one call at a time, off the event loop (e5,
transformers), and loading a ``transformers`` model (the transformers engine, the reward
classifier)."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from tideflow.core.errors import MissingDependencyError
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm._config import EngineConfig
from tideflow.streaming.llm._engine import Engine, GenerateRequest, GenerateResult

__all__ = [
    "ConcurrentEngine",
    "InProcessEngine",
    "embed_in_chunks",
    "load_pretrained",
    "max_model_len",
]


class ConcurrentEngine(Engine):
    """An engine that sends every request of a batch at once; :meth:`start` sets the bound
    (``self._semaphore``) and :meth:`_one` answers one request within it."""

    _semaphore: asyncio.Semaphore | None = None

    async def generate(
        self, requests: Sequence[GenerateRequest]
    ) -> list[GenerateResult | BaseException]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    @abc.abstractmethod
    async def _one(self, request: GenerateRequest) -> GenerateResult | BaseException:
        """The result of ``request``, or the error that is its row's (not the engine's)."""

    def _bound(self) -> asyncio.Semaphore:
        """The bound on requests in flight (``async with self._bound():``)."""
        assert self._semaphore is not None, "start() first"
        return self._semaphore


class InProcessEngine(Engine):
    """An engine whose model lives in the actor's process: :meth:`start` loads it off the
    event loop (:meth:`_load`), and calls on it run one at a time under ``self._lock``."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self._model: Any = None
        self._tokenizer: Any = None
        self._max_len = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    @abc.abstractmethod
    def _load(self) -> None:
        """Load the model and tokenizer (in a worker thread)."""


async def embed_in_chunks(
    lock: asyncio.Lock,
    texts: Sequence[str],
    size: int,
    embed: Callable[[list[str]], list[list[float]]],
) -> list[list[float]]:
    """``embed`` over ``texts`` in chunks of ``size``, each in a worker thread, while holding
    ``lock`` (the model runs one call at a time)."""
    async with lock:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), size):
            part = list(texts[start : start + size])
            vectors.extend(await asyncio.to_thread(embed, part))
        return vectors


def load_pretrained(cfg: Any, auto: str) -> tuple[Any, Any]:
    """The model of ``cfg.model_source`` through ``transformers.<auto>`` (on ``cfg.device``,
    in eval mode; ``cfg.dtype``, ``cfg.num_threads`` and ``cfg.engine_kwargs`` applied) and
    its tokenizer. A missing torch or transformers names the extra that installs them; a
    source transformers cannot load is a :class:`ConfigError` naming the config field."""
    try:
        import torch
        import transformers
    except ImportError as error:
        missing = error.name or "transformers"  # torch or transformers
        raise MissingDependencyError(missing, 'pip install "tideflow-streaming[llm]"') from error
    transformers.utils.logging.disable_progress_bar()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    kwargs = {"dtype": getattr(torch, cfg.dtype), **dict(cfg.engine_kwargs)}
    try:
        model = getattr(transformers, auto).from_pretrained(cfg.model_source, **kwargs)
    except OSError as error:  # no such directory or model, no config.json, no weights
        message = (
            f"{type(cfg).__name__}.model_source: {cfg.model_source!r} is not a model "
            f"directory transformers can load: {error}"
        )
        raise ConfigError(message) from error
    tokenizer = transformers.AutoTokenizer.from_pretrained(cfg.model_source)
    return model.to(cfg.device).eval(), tokenizer


def max_model_len(model: Any, cfg: Any) -> int:
    """``cfg.max_model_len``, else the model's ``max_position_embeddings`` (2048 unknown)."""
    model_len = getattr(model.config, "max_position_embeddings", None) or 2048
    return int(cfg.max_model_len or model_len)
