"""SGLang's offline engine (``sglang.Engine``) with async generation.

Written against SGLang's documented Python API: ``Engine(model_path=..., **server_args)``,
``await engine.async_generate(input_ids=..., sampling_params={...})`` (a dict with
``text``, ``output_ids`` and ``meta_info``) and ``update_weights_from_tensor``. The engine
is built on the actor's main thread (it installs signal handlers). Needs
``pip install "tideflow-streaming[sglang]"`` (CUDA wheels); imported when the engine starts.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tideflow.core.errors import MissingDependencyError
from tideflow.core.observability import get_logger
from tideflow.streaming.llm._config import SamplingParams, SGLangEngineConfig
from tideflow.streaming.llm._engine import GenerateRequest, GenerateResult, RequestError
from tideflow.streaming.llm.engines._shared import ConcurrentEngine

__all__ = ["SGLangEngine"]

_log = get_logger("tideflow.streaming.llm.sglang")


class SGLangEngine(ConcurrentEngine):
    """An ``sglang.Engine`` in the actor; requests are bounded by a semaphore."""

    config: SGLangEngineConfig

    def __init__(self, config: SGLangEngineConfig) -> None:
        super().__init__(config)
        self._engine: Any = None

    def prepare(self) -> None:
        try:
            sglang = importlib.import_module("sglang")  # by name: an optional extra
        except ImportError as error:
            hint = 'pip install "tideflow-streaming[sglang]" (CUDA wheels)'
            raise MissingDependencyError("sglang", hint) from error
        kwargs = dict(self.config.engine_kwargs)
        self._engine = sglang.Engine(model_path=self.config.model_source, **kwargs)
        _log.info("llm_engine_loaded", engine="sglang", model=self.config.model_source)

    async def start(self) -> None:
        self._semaphore = asyncio.Semaphore(self.config.max_concurrent_requests)

    @staticmethod
    def _sampling(sampling: SamplingParams) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k or -1,
            "ignore_eos": sampling.ignore_eos,
        }
        if sampling.stop:
            params["stop"] = list(sampling.stop)
        return params

    async def _one(self, request: GenerateRequest) -> GenerateResult | BaseException:
        kwargs: dict[str, Any] = {
            "sampling_params": self._sampling(request.sampling),
            "return_logprob": request.sampling.logprobs,
        }
        if request.prompt_token_ids is not None:
            kwargs["input_ids"] = list(request.prompt_token_ids)
        elif request.prompt is not None:
            kwargs["prompt"] = request.prompt
        else:
            return RequestError("the sglang engine needs a prompt: apply the chat template first")
        async with self._bound():
            started = time.perf_counter()
            try:
                out = await self._engine.async_generate(**kwargs)
            except ValueError as error:  # prompt too long, bad parameters
                return RequestError(f"sglang rejected the request: {error}")
        meta = out.get("meta_info", {})
        finish = meta.get("finish_reason")
        if isinstance(finish, dict):
            if finish.get("type") == "abort":
                return RequestError(f"sglang aborted the request: {finish.get('message')}")
            finish = finish.get("type")
        token_ids = out.get("output_ids")
        logprobs = None
        if request.sampling.logprobs and meta.get("output_token_logprobs"):
            logprobs = [float(entry[0]) for entry in meta["output_token_logprobs"]]
        generated = int(meta.get("completion_tokens", len(token_ids or ())))
        return GenerateResult(
            token_ids=None if token_ids is None else [int(t) for t in token_ids],
            text=out.get("text"),
            num_input_tokens=int(meta.get("prompt_tokens", 0)),
            num_generated_tokens=generated,
            finish_reason=finish,
            latency_s=time.perf_counter() - started,
            logprobs=logprobs,
        )

    async def load_weights(self, weights: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        items = list(weights.items() if isinstance(weights, Mapping) else weights)
        # The sync API runs its own event loop: call it from a worker thread with one.
        await asyncio.to_thread(self._update, items)
        _log.info("llm_weights_loaded", engine="sglang", tensors=len(items))

    def _update(self, items: list[tuple[str, Any]]) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        self._engine.update_weights_from_tensor(named_tensors=items)

    async def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
