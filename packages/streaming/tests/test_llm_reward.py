"""Scoring engines: a sequence classifier scores like the model called directly, in batches;
a generative judge over the OpenAI-protocol engine turns answers into numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm import (
    ClassifierEngine,
    ClassifierEngineConfig,
    GenerateRequest,
    JudgeConfig,
    OpenAIEngineConfig,
    RequestError,
    ScoreError,
    create_scorer,
)
from tideflow.streaming.llm.scoring import build_tiny_classifier
from tideflow.streaming.llm.testing import OpenAIServer, build_tiny_model, sample_texts


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("llm-reward")
    tokenizer = build_tiny_model(root / "lm")
    return str(build_tiny_classifier(root / "rm", tokenizer_from=tokenizer, num_labels=2))


def _direct(path: str, texts: list[str], label: int) -> list[float]:
    """Each text alone (no padding) through transformers' own classifier."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")
            out.append(float(model(**ids).logits[0, label]))
    return out


async def test_classifier_scores_equal_the_models_direct_scores_in_batches(classifier) -> None:
    texts = sample_texts(11, seed=3, min_words=2, max_words=15)  # unequal lengths: padding
    engine = ClassifierEngine(
        ClassifierEngineConfig(model_source=classifier, label=1, max_batch_size=4)
    )
    await engine.start()

    scores = await engine.score(texts)

    assert scores == pytest.approx(_direct(classifier, texts, 1), abs=1e-5)
    assert engine.calls == 3  # 4 + 4 + 3 texts
    assert len(set(scores)) > 1  # the texts are told apart


async def test_a_classifier_answers_a_generate_request_with_a_request_error(classifier) -> None:
    engine = ClassifierEngine(ClassifierEngineConfig(model_source=classifier))
    await engine.start()

    (failed,) = await engine.generate([GenerateRequest(prompt="river")])

    assert isinstance(failed, RequestError)


async def test_a_missing_model_directory_is_a_config_error(tmp_path: Path) -> None:
    engine = create_scorer(ClassifierEngineConfig(model_source=str(tmp_path / "nowhere")))

    with pytest.raises(ConfigError, match="is not a model directory"):
        await engine.start()


async def test_a_label_the_model_lacks_is_a_config_error(classifier) -> None:
    engine = create_scorer(ClassifierEngineConfig(model_source=classifier, label=2))

    with pytest.raises(ConfigError, match="label must be < the model's num_labels 2"):
        await engine.start()


async def test_a_judge_over_the_openai_engine_scores_the_first_number_it_answers() -> None:
    # The echo server answers a prompt's words reversed: the judge's answer starts with the
    # prompt's last word, so each text's score is known here.
    texts = ["grade this: 0.25", "the answer 3 5 7 = 9 1 3 deserves 1", "rate it 0.5 or -2"]
    with OpenAIServer(model_name="judge") as server:
        engine = OpenAIEngineConfig(
            model_source="judge", base_url=server.base_url, api_key_env=None
        )
        judge = create_scorer(JudgeConfig(engine=engine, max_tokens=4))
        await judge.start()
        try:
            scores = await judge.score(texts)
        finally:
            await judge.shutdown()

    assert scores == [0.25, 1.0, -2.0]
    assert server.requests == 3


async def test_a_judge_answer_without_a_number_fails_unless_it_has_a_default() -> None:
    with OpenAIServer(model_name="judge") as server:
        engine = OpenAIEngineConfig(
            model_source="judge", base_url=server.base_url, api_key_env=None
        )
        strict = create_scorer(JudgeConfig(engine=engine))
        lenient = create_scorer(JudgeConfig(engine=engine, unparsed_score=0.0))
        await strict.start()
        await lenient.start()
        try:
            with pytest.raises(ScoreError, match="holds no score"):
                await strict.score(["no number here"])
            assert await lenient.score(["no number here"]) == [0.0]
        finally:
            await strict.shutdown()
            await lenient.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_tokens": 0}, "JudgeConfig.max_tokens must be >= 1"),
        ({"pattern": "("}, "JudgeConfig.pattern is not a regular expression"),
    ],
)
def test_a_bad_judge_config_is_named(kwargs: dict, expected: str) -> None:
    engine = OpenAIEngineConfig(model_source="judge", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match=expected):
        JudgeConfig(engine=engine, **kwargs)
