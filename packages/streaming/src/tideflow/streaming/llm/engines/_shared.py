"""What the engines share: a batch's requests in flight at once under a bound (vLLM, SGLang,
OpenAI), and embedding texts in chunks, one call at a time, off the event loop (e5,
transformers)."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence

from tideflow.streaming.llm._engine import Engine, GenerateRequest, GenerateResult

__all__ = ["ConcurrentEngine", "embed_in_chunks"]


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
