"""What ``tools/bench/llm.py`` needs besides the library: an engine that waits, and the
overhead arithmetic of interleaved pairs.

With the CPU ``transformers`` engine on a small machine, the Processor's overhead figure is
mostly CPU contention: the engine shares its cores with the driver, Ray and the CPU stages,
which a direct call does not. A GPU or a remote engine spends its time waiting instead,
and leaves the cores to the other stages. :class:`FixedLatencyEngine` stands in for one, so
that the benchmark also measures what the Processor itself adds.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from tideflow.streaming import StageMetrics
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm import (
    Engine,
    EngineConfig,
    GenerateRequest,
    GenerateResult,
    RequestError,
)

__all__ = [
    "FixedLatencyEngine",
    "FixedLatencyEngineConfig",
    "PairedOverhead",
    "paired_overhead",
    "processor_span_s",
]


@dataclass(frozen=True, kw_only=True)
class FixedLatencyEngineConfig(EngineConfig):
    """A :class:`FixedLatencyEngine`: ``model_source`` is the directory whose tokenizer the
    Processor's CPU stages use (chat template, tokenize, detokenize); no model is loaded."""

    kind: ClassVar[str] = "fixed_latency"

    batch_latency_s: float = 0.25
    """Seconds each ``generate`` call holds the device, whatever its size (> 0)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        latency = self.batch_latency_s
        if isinstance(latency, bool) or not math.isfinite(latency) or latency <= 0:
            message = (
                f"FixedLatencyEngineConfig.batch_latency_s must be a number > 0; got {latency!r}"
            )
            raise ConfigError(message)


class FixedLatencyEngine(Engine):
    """A stand-in for a GPU or remote engine, for benchmarks only: it spends its time waiting.

    Each ``generate`` call holds one device for ``batch_latency_s`` seconds, using no CPU
    meanwhile; calls take the device one at a time (a call made while another holds it
    waits its turn, as batches on one GPU do). Each request gets ``max_tokens`` tokens: its
    prompt's token ids, repeated, so that a detokenize stage decodes real ids.
    """

    config: FixedLatencyEngineConfig

    def __init__(self, config: FixedLatencyEngineConfig) -> None:
        super().__init__(config)
        self._device = asyncio.Lock()

    async def generate(
        self, requests: Sequence[GenerateRequest]
    ) -> list[GenerateResult | BaseException]:
        started = time.perf_counter()
        async with self._device:
            await asyncio.sleep(self.config.batch_latency_s)
        latency = time.perf_counter() - started
        return [_result(request, latency) for request in requests]


def _result(request: GenerateRequest, latency_s: float) -> GenerateResult | BaseException:
    prompt = list(request.prompt_token_ids or ())
    if not prompt:
        return RequestError("the fixed-latency engine needs prompt_token_ids")
    count = request.sampling.max_tokens
    tokens = (prompt * (count // len(prompt) + 1))[:count]
    return GenerateResult(
        token_ids=tokens,
        text=None,
        num_input_tokens=len(prompt),
        num_generated_tokens=count,
        finish_reason="length",
        latency_s=latency_s,
    )


def processor_span_s(stages: Mapping[str, StageMetrics], names: Sequence[str]) -> float:
    """Seconds from the first batch's start in any of the stages ``names`` to the last
    batch's end in any of them: the Processor's wall time with its actors already started
    (a job's flow begins once every stage has an actor), its fill and drain included."""
    picked = [stages[name] for name in names]
    starts = [s.first_start for s in picked if s.first_start is not None]
    ends = [s.last_end for s in picked if s.last_end is not None]
    if not starts or not ends:
        raise ValueError(f"stages {list(names)} processed no batch")
    return max(ends) - min(starts)


@dataclass(frozen=True, kw_only=True)
class PairedOverhead:
    """The overhead of interleaved (direct, processor) pairs, in percent of the direct wall."""

    per_pair_pct: tuple[float, ...]
    """``100 × (processor − direct) ÷ direct`` of each pair, in run order."""

    @property
    def median_pct(self) -> float:
        """The median over the pairs: the figure the goal is checked on."""
        return statistics.median(self.per_pair_pct)


def paired_overhead(direct_s: Sequence[float], processor_s: Sequence[float]) -> PairedOverhead:
    """The overhead of each pair ``(direct_s[i], processor_s[i])``, both wall seconds on the
    same requests; pairs run interleaved so that drift of the machine hits both alike."""
    if len(direct_s) != len(processor_s) or not direct_s:
        message = (
            "paired_overhead: expected as many direct as processor walls, at least one; "
            f"got {len(direct_s)} and {len(processor_s)}"
        )
        raise ValueError(message)
    return PairedOverhead(
        per_pair_pct=tuple(100 * (p - d) / d for d, p in zip(direct_s, processor_s, strict=True))
    )
