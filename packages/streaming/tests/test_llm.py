"""The LLM operator: stages, dead letters, the transformers and OpenAI-protocol engines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import _llm_udfs
import pyarrow as pa
import pytest
from _llm_udfs import (
    DiesOnceConfig,
    DiesOnceEngine,
    decode,
    direct_generate,
    keep_answer,
    to_chat,
    to_prompt,
)
from ray import cloudpickle

from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming._plan import StageSpec
from tideflow.streaming._worker import StageWorker
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm import (
    OpenAIEngineConfig,
    ProcessorConfig,
    SamplingParams,
    TransformersEngineConfig,
    build_processor,
    register_engine,
)
from tideflow.streaming.llm._stages import EngineStage
from tideflow.streaming.llm.testing import OpenAIServer, Slow, build_tiny_model, sample_texts
from tideflow.streaming.testing import CollectingSink, TestSource

# Workers of a Ray started by another package's tests lack this folder on their path.
cloudpickle.register_pickle_by_value(_llm_udfs)

MAX_TOKENS = 12


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), arch="qwen2"))


def _questions(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "text": t} for i, t in enumerate(sample_texts(n, seed=7))]


def _run(pipeline: Pipeline, tmp_path: Path, job_id: str) -> tuple[pa.Table, pa.Table | None]:
    dead = CollectingSink(str(tmp_path / "dead"))
    pipeline.write(CollectingSink(str(tmp_path / "out"))).run(
        job_id=job_id,
        checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=1.0),
        dead_letter=dead,
        progress=False,
    )
    out = CollectingSink.read(str(tmp_path / "out"))
    letters = CollectingSink.read(str(tmp_path / "dead")) if (tmp_path / "dead").exists() else None
    return out.sort_by("id"), letters


def _worker_chain(processor: Any, table: pa.Table) -> tuple[pa.Table, list[pa.Table]]:
    """Run a processor's stages in this process, as the engine's stage workers do."""
    dead = []
    for stage in processor.stages:
        spec = StageSpec(
            name=stage.name,
            udf=stage.udf,
            kind="batches",
            constructor_args=stage.args,
            constructor_kwargs=dict(stage.kwargs),
        )
        table, letters = StageWorker(spec).process(table).value
        if letters is not None:
            dead.append(letters)
    return table, dead


# -- configuration --------------------------------------------------------------------


def test_a_row_may_override_the_default_sampling_parameters():
    base = SamplingParams(max_tokens=8)
    assert base.merged({"max_tokens": 3, "temperature": None}).max_tokens == 3
    assert base.merged({"stop": "."}).stop == (".",)
    with pytest.raises(ConfigError, match="unknown sampling parameters"):
        base.merged({"max_new_tokens": 3})


def test_an_http_engine_leaves_templating_and_tokenizing_to_the_server():
    config = ProcessorConfig(
        engine=OpenAIEngineConfig(model_source="m", base_url="http://127.0.0.1:1/v1")
    )
    processor = build_processor(config, preprocess=to_chat, postprocess=keep_answer)
    assert [s.name for s in processor.stages] == ["llm_preprocess", "llm_engine", "llm_postprocess"]


def test_a_local_engine_gets_every_cpu_stage_and_the_engine_its_own_pool():
    config = ProcessorConfig(
        engine=TransformersEngineConfig(model_source="/m", device="cuda"),
        concurrency=(1, 4),
        accelerator_type="H100",
    )
    processor = build_processor(config, preprocess=to_chat)
    names = [s.name for s in processor.stages]
    assert names == [
        "llm_preprocess",
        "llm_chat_template",
        "llm_tokenize",
        "llm_engine",
        "llm_detokenize",
    ]
    engine = processor.stages[3].options
    assert (engine["num_gpus"], engine["concurrency"], engine["accelerator_type"]) == (
        1.0,
        (1, 4),
        "H100",
    )
    assert "num_gpus" not in processor.stages[0].options  # CPU stages take no GPU


# -- per-row failures, in process -----------------------------------------------------


def test_a_prompt_too_long_is_a_dead_letter_and_the_batch_runs_the_engine_once(
    tiny_model, monkeypatch
):
    config = ProcessorConfig(
        engine=TransformersEngineConfig(model_source=tiny_model),
        sampling=SamplingParams(max_tokens=4),
    )
    processor = build_processor(config, preprocess=to_chat)
    rows = [*_questions(7), {"id": 7, "text": "sea " * 300}]
    calls: list[int] = []
    original = EngineStage.process

    def counting(self: Any, batch: list[dict[str, Any]]) -> Any:
        calls.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(EngineStage, "process", counting)
    out, dead = _worker_chain(processor, pa.Table.from_pylist(rows))
    assert sorted(out.column("id").to_pylist()) == list(range(7))
    assert calls == [8]  # the bad row was named (RecordErrors): no calls on halves
    (letters,) = dead
    assert letters.column("stage").to_pylist() == ["llm_engine"]
    assert "exceeds the model's max_model_len" in letters.column("error")[0].as_py()


def test_a_message_the_chat_template_rejects_is_a_dead_letter(tiny_model):
    config = ProcessorConfig(engine=TransformersEngineConfig(model_source=tiny_model))
    processor = build_processor(config, preprocess=to_chat)
    rows = [{"id": 0, "text": "river", "role": "user"}, {"id": 1, "text": "sea", "role": "robot"}]
    out, dead = _worker_chain(processor, pa.Table.from_pylist(rows))
    assert out.column("id").to_pylist() == [0]
    (letters,) = dead
    assert letters.column("stage").to_pylist() == ["llm_chat_template"]
    assert "unknown role: robot" in letters.column("error")[0].as_py()


def test_the_embedding_task_returns_one_unit_vector_per_text(tiny_model):
    config = ProcessorConfig(engine=TransformersEngineConfig(model_source=tiny_model, task="embed"))
    processor = build_processor(config)
    assert [s.name for s in processor.stages] == ["llm_engine"]
    out, dead = _worker_chain(processor, pa.Table.from_pylist(_questions(5)))
    vectors = out.column("embeddings").to_pylist()
    assert not dead and len(vectors) == 5 and len(vectors[0]) == 64
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)


# -- on a real local Ray ---------------------------------------------------------------


@pytest.mark.ray
def test_greedy_outputs_through_the_pipeline_equal_direct_generate(
    ray_session, tiny_model, tmp_path
):
    rows = [*_questions(24), {"id": 24, "text": "tide " * 300}]
    config = ProcessorConfig(
        engine=TransformersEngineConfig(model_source=tiny_model, max_batch_size=8),
        sampling=SamplingParams(max_tokens=MAX_TOKENS),
        batch_size=8,
        cpu_stage_num_cpus=0.25,
        num_cpus=0.5,
    )
    processor = build_processor(config, preprocess=to_chat, postprocess=keep_answer)
    source = TestSource([rows[:13], rows[13:]])
    out, letters = _run(processor(Pipeline.read(source, batch_size=13)), tmp_path, "llm-greedy")

    questions = rows[:24]
    expected = direct_generate(
        tiny_model, [[{"role": "user", "content": r["text"]}] for r in questions], MAX_TOKENS
    )
    assert out.column("id").to_pylist() == list(range(24))
    assert out.column("text").to_pylist() == [r["text"] for r in questions]  # columns kept
    assert out.column("generated_tokens").to_pylist() == expected
    assert out.column("answer").to_pylist() == decode(tiny_model, expected)
    assert out.column("num_generated_tokens").to_pylist() == [len(t) for t in expected]
    assert min(out.column("num_input_tokens").to_pylist()) > 0
    assert min(out.column("latency_s").to_pylist()) > 0
    assert "__llm_row_id" not in out.column_names
    assert letters is not None and letters.num_rows == 1
    assert "max_model_len" in letters.column("error")[0].as_py()


@pytest.mark.ray
def test_the_openai_engine_returns_every_row_once_despite_429s_500s_and_slow_replies(
    ray_session, tiny_model, tmp_path
):
    rows = [*_questions(30), {"id": 30, "text": "wind " * 300}]
    faults: list[int | Slow] = [429, 500, 429, 503, Slow(3.0), 500, 429, Slow(3.0)]
    with OpenAIServer(tiny_model, faults=faults) as server:
        config = ProcessorConfig(
            engine=OpenAIEngineConfig(
                model_source=server.model_name,
                base_url=server.base_url,
                api_key_env=None,
                timeout_s=1.0,
                retry_backoff_s=0.05,
                max_concurrent_requests=8,
            ),
            sampling=SamplingParams(max_tokens=MAX_TOKENS),
            cpu_stage_num_cpus=0.25,
            num_cpus=0.25,
        )
        processor = build_processor(config, preprocess=to_prompt, postprocess=keep_answer)
        source = TestSource([rows[:16], rows[16:]])
        out, letters = _run(processor(Pipeline.read(source)), tmp_path, "llm-openai")
        faulted = dict(server.faulted)

    questions = rows[:30]
    prompts: list[Any] = [
        [{"role": "user", "content": r["text"]}] if r["id"] % 2 == 0 else r["text"]
        for r in questions
    ]
    expected = decode(tiny_model, direct_generate(tiny_model, prompts, MAX_TOKENS))
    assert out.column("id").to_pylist() == list(range(30))  # every row once
    assert out.column("answer").to_pylist() == expected  # each in its own row
    assert faulted == {"429": 3, "500": 2, "503": 1, "slow": 2}
    assert letters is not None and letters.column("error").to_pylist() == [
        letters.column("error")[0].as_py()
    ]
    assert "HTTP 400" in letters.column("error")[0].as_py()


@pytest.mark.ray
def test_an_engine_actor_that_dies_is_restarted_and_its_rows_retried(
    ray_session, tiny_model, tmp_path
):
    # Registered in the driver only: the processor ships the engine class to its actors.
    register_engine(DiesOnceConfig.kind, DiesOnceEngine)
    flag = tmp_path / "died"
    config = ProcessorConfig(
        engine=DiesOnceConfig(model_source=tiny_model, flag=str(flag), max_batch_size=4),
        sampling=SamplingParams(max_tokens=MAX_TOKENS),
        batch_size=4,
    )
    questions = _questions(24)
    processor = build_processor(config, preprocess=to_chat, postprocess=keep_answer)
    pipeline = processor(Pipeline.read(TestSource([questions]), batch_size=4))
    out, dead = _run(pipeline, tmp_path, "llm-engine-dies")

    assert flag.exists()  # the engine's actor process was SIGKILLed mid-run
    assert dead is None or dead.num_rows == 0
    assert out.column("id").to_pylist() == list(range(24))  # every row once
    expected = decode(
        tiny_model,
        direct_generate(tiny_model, [to_chat(q)["messages"] for q in questions], MAX_TOKENS),
    )
    assert out.column("answer").to_pylist() == expected


def test_an_unknown_engine_kind_fails_when_the_processor_is_built():
    @dataclass(frozen=True, kw_only=True)
    class Nowhere(TransformersEngineConfig):
        kind: ClassVar[str] = "test-nowhere"

    with pytest.raises(ConfigError, match="no engine named 'test-nowhere'"):
        build_processor(ProcessorConfig(engine=Nowhere(model_source="/m")))
    with pytest.raises(ConfigError, match="Engine subclass"):
        register_engine("test-bad", 42)  # type: ignore[arg-type]


def test_an_engine_that_keeps_the_stop_token_returns_it_with_its_logprob(tiny_model):
    import asyncio

    from tideflow.streaming.llm import GenerateRequest, create_engine
    from tideflow.streaming.llm.engines.transformers import TransformersEngine

    class KeepsStop(TransformersEngine):
        keep_stop_token = True

    config = TransformersEngineConfig(model_source=tiny_model)
    prompt = GenerateRequest(prompt="river and sea", sampling=SamplingParams(max_tokens=8))
    free = SamplingParams(max_tokens=8, ignore_eos=True, logprobs=True)
    stop_on = SamplingParams(max_tokens=8, logprobs=True)

    async def go() -> tuple[Any, Any, Any, int]:
        plain, keeps = create_engine(config), KeepsStop(config)
        await plain.start()
        await keeps.start()
        (run,) = await plain.generate([GenerateRequest(prompt=prompt.prompt, sampling=free)])
        # Make the third greedy token the end of sequence (it must not occur before it).
        stop = next(t for i, t in enumerate(run.token_ids) if i >= 2 and t not in run.token_ids[:i])
        for engine in (plain, keeps):
            engine._model.generation_config.eos_token_id = stop
        (cut,) = await plain.generate([GenerateRequest(prompt=prompt.prompt, sampling=stop_on)])
        (kept,) = await keeps.generate([GenerateRequest(prompt=prompt.prompt, sampling=stop_on)])
        return run, cut, kept, stop

    run, cut, kept, stop = asyncio.run(go())
    at = run.token_ids.index(stop)
    assert cut.finish_reason == kept.finish_reason == "stop"
    assert cut.token_ids == run.token_ids[:at]  # the default drops the stop token
    assert kept.token_ids == run.token_ids[: at + 1]  # as vLLM returns it
    assert len(kept.logprobs) == at + 1
    assert kept.logprobs[:at] == pytest.approx(cut.logprobs)
    assert kept.num_generated_tokens == at + 1
