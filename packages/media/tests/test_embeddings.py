"""Embeddings by name go through the LLM operator's engines (one code path for vectors)."""

from __future__ import annotations

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
