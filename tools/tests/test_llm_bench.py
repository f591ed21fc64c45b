"""The LLM benchmark's helpers: the fixed-latency engine (a stand-in for a GPU or remote
engine) and the arithmetic of its overhead figure."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest

from tideflow.streaming import CheckpointConfig, Pipeline, StageMetrics
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm import (
    GenerateRequest,
    GenerateResult,
    ProcessorConfig,
    RequestError,
    SamplingParams,
    build_processor,
    register_engine,
)
from tideflow.streaming.llm.testing import build_tiny_model
from tideflow.streaming.testing import CollectingSink, TestSource
from tideflow_tools.llm_bench import (
    FixedLatencyEngine,
    FixedLatencyEngineConfig,
    paired_overhead,
    processor_span_s,
)


def _engine(latency_s: float) -> FixedLatencyEngine:
    return FixedLatencyEngine(
        FixedLatencyEngineConfig(model_source="unused", batch_latency_s=latency_s)
    )


def _request(ids: list[int], max_tokens: int = 5) -> GenerateRequest:
    return GenerateRequest(prompt_token_ids=ids, sampling=SamplingParams(max_tokens=max_tokens))


async def test_each_request_gets_max_tokens_drawn_from_its_prompt() -> None:
    results = await _engine(0.001).generate([_request([7, 8], 5), _request([3, 4, 5, 6], 3)])

    produced = [
        (r.token_ids, r.num_generated_tokens) for r in results if isinstance(r, GenerateResult)
    ]
    assert produced == [([7, 8, 7, 8, 7], 5), ([3, 4, 5], 3)]


async def test_calls_made_at_once_hold_the_device_one_after_another() -> None:
    engine = _engine(0.05)
    started = time.perf_counter()

    await asyncio.gather(*(engine.generate([_request([1])]) for _ in range(3)))

    assert time.perf_counter() - started >= 3 * 0.05


async def test_a_request_without_token_ids_fails_alone() -> None:
    good, bad = await _engine(0.001).generate([_request([1]), GenerateRequest(prompt="text")])

    assert not isinstance(good, BaseException)
    assert isinstance(bad, RequestError)


@pytest.mark.parametrize("latency", [0.0, -1.0, math.nan, math.inf])
def test_a_batch_latency_that_is_not_a_positive_number_is_refused(latency: float) -> None:
    with pytest.raises(ConfigError, match="batch_latency_s must be a number > 0"):
        FixedLatencyEngineConfig(model_source="unused", batch_latency_s=latency)


def test_the_processor_span_runs_from_its_first_stage_start_to_its_last_stage_end() -> None:
    stages = {
        "read": StageMetrics(name="read", first_start=0.0, last_end=9.0),
        "tokenize": StageMetrics(name="tokenize", first_start=10.0, last_end=13.0),
        "engine": StageMetrics(name="engine", first_start=10.5, last_end=14.0),
        "detokenize": StageMetrics(name="detokenize", first_start=11.0, last_end=14.25),
    }

    assert processor_span_s(stages, ["tokenize", "engine", "detokenize"]) == 4.25


@pytest.mark.parametrize(
    ("direct", "processor", "per_pair", "median"),
    [
        ([1.0], [1.05], [5.0], 5.0),
        ([2.0, 1.0, 4.0], [2.2, 1.0, 4.12], [10.0, 0.0, 3.0], 3.0),  # each against its own
        ([1.0, 1.0], [0.98, 1.02], [-2.0, 2.0], 0.0),  # faster than direct: negative
    ],
)
def test_each_pair_s_overhead_is_relative_to_its_own_direct_wall(
    direct: list[float], processor: list[float], per_pair: list[float], median: float
) -> None:
    overhead = paired_overhead(direct, processor)

    assert overhead.per_pair_pct == pytest.approx(per_pair)
    assert overhead.median_pct == pytest.approx(median)


@pytest.mark.parametrize(("direct", "processor"), [([], []), ([1.0, 2.0], [1.0])])
def test_pairs_missing_a_side_are_refused(direct: list[float], processor: list[float]) -> None:
    with pytest.raises(ValueError, match="as many direct as processor walls"):
        paired_overhead(direct, processor)


@pytest.mark.ray
@pytest.mark.slow
def test_the_fixed_latency_engine_runs_in_the_processor_s_engine_actor(
    ray_session: None, tmp_path: Path
) -> None:
    model = build_tiny_model(tmp_path / "model")
    register_engine(FixedLatencyEngineConfig.kind, FixedLatencyEngine)
    config = ProcessorConfig(
        engine=FixedLatencyEngineConfig(model_source=str(model), batch_latency_s=0.01),
        sampling=SamplingParams(max_tokens=4),
        batch_size=8,
        cpu_stage_num_cpus=0.25,
    )
    rows = [{"id": i, "messages": [{"role": "user", "content": f"hello {i}"}]} for i in range(20)]
    pipeline = build_processor(config)(Pipeline.read(TestSource([rows]), batch_size=8))

    pipeline.write(CollectingSink(str(tmp_path / "out"))).run(
        job_id="fixed-latency",
        checkpoint=CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=5.0),
        dead_letter=CollectingSink(str(tmp_path / "dead")),
        progress=False,
    )

    out = CollectingSink.read(str(tmp_path / "out")).sort_by("id")
    assert out.column("id").to_pylist() == list(range(20))
    assert set(out.column("num_generated_tokens").to_pylist()) == {4}
    assert all(out.column("generated_text").to_pylist())
