"""The vLLM and SGLang adapters on a real GPU (``tools/gpu_check.sh`` runs these)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _llm_udfs import direct_generate, to_chat

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.llm import (
    GenerateRequest,
    ProcessorConfig,
    SamplingParams,
    SGLangEngineConfig,
    VLLMEngineConfig,
    build_processor,
    create_engine,
)
from tideflow.streaming.llm.testing import build_tiny_model, sample_texts
from tideflow.streaming.testing import CollectingSink, TestSource

pytestmark = pytest.mark.gpu

MAX_TOKENS = 12


def _needs(module: str) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    # The engines are optional extras, resolved apart in the lock (their CUDA pins clash):
    # `tools/gpu_check.sh` syncs the vllm extra, then the sglang extra, and runs each's tests.
    pytest.importorskip(module, reason=f"{module} is not installed (see tools/gpu_check.sh)")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-gpu"), arch="llama"))


def _prompt_ids(model: str, texts: list[str]) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(model)
    return [
        [
            int(t)
            for t in tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, return_dict=False
            )
        ]
        for text in texts
    ]


def _agree(got: list[list[int]], expected: list[list[int]]) -> float:
    return sum(g == e for g, e in zip(got, expected, strict=True)) / len(expected)


_VLLM_KWARGS = {"dtype": "float32", "gpu_memory_utilization": 0.3, "enforce_eager": True}


def test_vllm_greedy_outputs_match_transformers_and_new_weights_take_effect(tiny_model, tmp_path):
    _needs("vllm")
    texts = sample_texts(16, seed=11)
    ids = _prompt_ids(tiny_model, texts)
    expected = direct_generate(
        tiny_model, [[{"role": "user", "content": t}] for t in texts], MAX_TOKENS
    )
    engine = create_engine(
        VLLMEngineConfig(model_source=tiny_model, engine_kwargs=dict(_VLLM_KWARGS))
    )
    sampling = SamplingParams(max_tokens=MAX_TOKENS, logprobs=True)

    async def run() -> tuple[list[Any], list[Any]]:
        await engine.start()
        requests = [GenerateRequest(prompt_token_ids=i, sampling=sampling) for i in ids]
        before = await engine.generate(requests)
        other = build_tiny_model(tmp_path / "other", arch="llama", seed=1)
        from safetensors.torch import load_file

        await engine.load_weights(load_file(str(other / "model.safetensors")))
        after = await engine.generate(requests)
        await engine.shutdown()
        return before, after

    before, after = asyncio.run(run())
    got = [r.token_ids for r in before]
    assert _agree(got, expected) >= 0.9  # float32 on both sides; a rare near-tie may differ
    assert all(r.logprobs is not None and len(r.logprobs) == len(r.token_ids) for r in before)
    other_expected = direct_generate(
        str(tmp_path / "other"), [[{"role": "user", "content": t}] for t in texts], MAX_TOKENS
    )
    assert _agree([r.token_ids for r in after], other_expected) >= 0.9


@pytest.mark.ray
def test_vllm_runs_as_the_engine_stage_of_a_pipeline(ray_session, tiny_model, tmp_path):
    _needs("vllm")
    rows = [{"id": i, "text": t} for i, t in enumerate(sample_texts(64, seed=5))]
    config = ProcessorConfig(
        engine=VLLMEngineConfig(model_source=tiny_model, engine_kwargs=dict(_VLLM_KWARGS)),
        sampling=SamplingParams(max_tokens=MAX_TOKENS),
        num_gpus=1,
        cpu_stage_num_cpus=0.25,
    )
    pipeline = build_processor(config, preprocess=to_chat)(Pipeline.read(TestSource([rows])))
    pipeline.write(CollectingSink(str(tmp_path / "out"))).run(
        job_id="llm-vllm", checkpoint=CheckpointConfig(uri=str(tmp_path / "ck")), progress=False
    )
    out = CollectingSink.read(str(tmp_path / "out")).sort_by("id")
    assert out.column("id").to_pylist() == list(range(64))
    assert all(n > 0 for n in out.column("num_generated_tokens").to_pylist())


def test_sglang_greedy_outputs_match_transformers(tiny_model):
    _needs("sglang")
    texts = sample_texts(16, seed=11)
    ids = _prompt_ids(tiny_model, texts)
    expected = direct_generate(
        tiny_model, [[{"role": "user", "content": t}] for t in texts], MAX_TOKENS
    )
    engine = create_engine(
        SGLangEngineConfig(
            model_source=tiny_model, engine_kwargs={"dtype": "float32", "mem_fraction_static": 0.3}
        )
    )
    engine.prepare()

    async def run() -> list[Any]:
        await engine.start()
        sampling = SamplingParams(max_tokens=MAX_TOKENS)
        results = await engine.generate(
            [GenerateRequest(prompt_token_ids=i, sampling=sampling) for i in ids]
        )
        await engine.shutdown()
        return results

    results = asyncio.run(run())
    assert _agree([r.token_ids for r in results], expected) >= 0.9
