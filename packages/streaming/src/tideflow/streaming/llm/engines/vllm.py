"""vLLM's async engine: every request of a batch in flight at once (continuous batching).

Written against vLLM's documented ``AsyncLLMEngine`` API (``AsyncLLM`` in the V1 engine):
``from_engine_args(AsyncEngineArgs(model=...))``, ``generate(prompt, sampling_params,
request_id)`` (an async iterator whose last item is the finished output) and
``collective_rpc`` for loading new weights into the workers. Needs
``pip install "tideflow-streaming[vllm]"``; imported when the engine starts.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from tideflow.core.errors import MissingDependencyError
from tideflow.core.observability import get_logger
from tideflow.streaming.llm._config import SamplingParams, VLLMEngineConfig
from tideflow.streaming.llm._engine import (
    EngineCrashedError,
    GenerateRequest,
    GenerateResult,
    RequestError,
)
from tideflow.streaming.llm.engines._shared import ConcurrentEngine

__all__ = ["VLLMEngine"]

_log = get_logger("tideflow.streaming.llm.vllm")


def _import_vllm() -> Any:
    try:
        # By name: mypy and machines without the optional extra never see the module.
        vllm = importlib.import_module("vllm")
    except ImportError as error:
        hint = 'pip install "tideflow-streaming[vllm]" (CUDA wheels)'
        raise MissingDependencyError("vllm", hint) from error
    return vllm


def _load_into_worker(worker: Any, weights: list[tuple[str, Any]]) -> int:
    """Runs inside each vLLM worker (through ``collective_rpc``): copy the new weights."""
    model = worker.model_runner.model
    model.load_weights(weights=weights)
    return len(weights)


class VLLMEngine(ConcurrentEngine):
    """A vLLM ``AsyncLLMEngine`` in the actor; requests are bounded by a semaphore."""

    config: VLLMEngineConfig
    _vllm: Any = None
    """The ``vllm`` module, once :meth:`start` imported it."""
    _engine: Any = None
    """The ``AsyncLLMEngine``, from :meth:`start` to :meth:`shutdown`."""

    async def start(self) -> None:
        vllm = _import_vllm()
        self._vllm = vllm
        args = vllm.AsyncEngineArgs(
            model=self.config.model_source, **dict(self.config.engine_kwargs)
        )
        self._engine = vllm.AsyncLLMEngine.from_engine_args(args)
        self._semaphore = asyncio.Semaphore(self.config.max_concurrent_requests)
        _log.info("llm_engine_loaded", engine="vllm", model=self.config.model_source)

    def _sampling(self, sampling: SamplingParams) -> Any:
        kwargs: dict[str, Any] = {
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "ignore_eos": sampling.ignore_eos,
        }
        if sampling.top_k:
            kwargs["top_k"] = sampling.top_k
        if sampling.stop:
            kwargs["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            kwargs["seed"] = sampling.seed
        if sampling.logprobs:
            kwargs["logprobs"] = 0  # the sampled token's log-probability only
        return self._vllm.SamplingParams(**kwargs)

    async def _one(self, request: GenerateRequest) -> GenerateResult | BaseException:
        if request.prompt_token_ids is not None:
            prompt: Any = {"prompt_token_ids": list(request.prompt_token_ids)}
        elif request.prompt is not None:
            prompt = {"prompt": request.prompt}
        else:
            return RequestError("the vllm engine needs a prompt: apply the chat template first")
        async with self._bound():
            started = time.perf_counter()
            final = None
            try:
                async for output in self._engine.generate(
                    prompt, self._sampling(request.sampling), uuid.uuid4().hex
                ):
                    final = output
            except ValueError as error:  # prompt too long, bad parameters: the row's fault
                return RequestError(f"vllm rejected the request: {error}")
            except Exception as error:
                if "EngineDead" in type(error).__name__ or "dead" in str(error).lower():
                    raise EngineCrashedError(f"vllm engine died: {error}") from error
                raise
        if final is None or not final.outputs:
            return RequestError("vllm returned no output")
        completion = final.outputs[0]
        logprobs = None
        if request.sampling.logprobs and completion.logprobs:
            logprobs = [
                float(step[token].logprob)
                for step, token in zip(completion.logprobs, completion.token_ids, strict=False)
            ]
        return GenerateResult(
            token_ids=list(completion.token_ids),
            text=completion.text,
            num_input_tokens=len(final.prompt_token_ids or ()),
            num_generated_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason,
            latency_s=time.perf_counter() - started,
            logprobs=logprobs,
        )

    async def load_weights(self, weights: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        items = list(weights.items() if isinstance(weights, Mapping) else weights)
        await self._engine.collective_rpc(_load_into_worker, args=(items,))
        await self._engine.reset_prefix_cache()  # cached KV of the old weights is stale
        _log.info("llm_weights_loaded", engine="vllm", tensors=len(items))

    async def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
