"""Any OpenAI-compatible endpoint through the official ``openai`` client.

Every request of a batch is in flight at once (bounded by ``max_concurrent_requests`` per
actor and paced by ``qps``): with 50 ms of server latency a batch of 64 takes ~50 ms, not
~3.2 s as with one-after-another sending. Retries are ours, not the client's, so that a
request's tries, backoff and final error are decided in one place: 429, 408/409, 5xx,
timeouts and connection errors are retried with exponential backoff and jitter (honouring
``Retry-After``); any other error status (400: prompt too long, 404: no such model, …)
fails the row for good and it becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from tideflow.core.errors import MissingDependencyError
from tideflow.core.observability import get_logger
from tideflow.streaming.llm._config import OpenAIEngineConfig, SamplingParams
from tideflow.streaming.llm._engine import (
    GenerateRequest,
    GenerateResult,
    LLMError,
    RequestError,
)
from tideflow.streaming.llm.engines._shared import ConcurrentEngine

__all__ = ["OpenAIEngine", "TransientRequestError"]

_log = get_logger("tideflow.streaming.llm.openai")


class TransientRequestError(LLMError):
    """A request still failing with a transient error after every retry."""


class _Pacer:
    """Spaces request starts ``1 / qps`` seconds apart (no limit when ``qps`` is None)."""

    def __init__(self, qps: float | None) -> None:
        self._interval = 0.0 if qps is None else 1.0 / qps
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class OpenAIEngine(ConcurrentEngine):
    """Requests to an OpenAI-protocol server (chat completions or completions)."""

    config: OpenAIEngineConfig

    def __init__(self, config: OpenAIEngineConfig) -> None:
        super().__init__(config)
        self._client: Any = None
        self._openai: Any = None
        self._pacer = _Pacer(config.qps)
        self.tries = 0
        """Requests sent, retries included (tests and benchmarks read it)."""

    async def start(self) -> None:
        try:
            import openai
        except ImportError as error:
            hint = 'pip install "tideflow-streaming[llm]"'
            raise MissingDependencyError("openai", hint) from error
        cfg = self.config
        # The key is resolved here, in the actor: it is never part of the pickled plan,
        # and it is passed only to the client (never logged).
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        self._openai = openai
        self._client = openai.AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=key or "EMPTY",
            max_retries=0,
            timeout=cfg.timeout_s,
            default_headers=dict(cfg.headers) or None,
        )
        self._semaphore = asyncio.Semaphore(cfg.max_concurrent_requests)
        _log.info(
            "llm_engine_started",
            engine="openai",
            base_url=cfg.base_url,
            model=cfg.model_source,
            api_key_set=bool(key),
            max_concurrent_requests=cfg.max_concurrent_requests,
            qps=cfg.qps,
        )

    async def _one(self, request: GenerateRequest) -> GenerateResult | BaseException:
        cfg = self.config
        openai = self._openai
        started = time.perf_counter()
        error: BaseException | None = None
        for attempt in range(cfg.max_retries + 1):
            retry_after: float | None = None
            async with self._bound():
                await self._pacer.wait()
                self.tries += 1
                try:
                    result = await self._call(request)
                except openai.APIStatusError as status_error:
                    code = status_error.status_code
                    if code not in cfg.retry_status_codes:
                        return RequestError(f"HTTP {code}: {_short(status_error)}")
                    error = status_error
                    retry_after = _retry_after(status_error)
                except openai.APIConnectionError as connection_error:  # timeouts included
                    error = connection_error
                except RequestError as request_error:
                    return request_error
                else:
                    return _with_latency(result, time.perf_counter() - started)
            if attempt == cfg.max_retries:
                break
            wait = min(cfg.retry_backoff_max_s, cfg.retry_backoff_s * 2**attempt)
            wait *= random.uniform(0.5, 1.0)  # jitter: retries of one burst spread out
            if retry_after is not None:
                wait = min(cfg.retry_backoff_max_s, max(wait, retry_after))
            _log.debug(
                "llm_request_retry", attempt=attempt + 1, wait_s=round(wait, 3), error=_short(error)
            )
            await asyncio.sleep(wait)
        message = f"gave up after {cfg.max_retries + 1} tries: {_short(error)}"
        return TransientRequestError(message)

    async def _call(self, request: GenerateRequest) -> GenerateResult:
        cfg = self.config
        chat = cfg.endpoint == "chat" or (cfg.endpoint == "auto" and request.messages is not None)
        args, extra = _sampling_args(request.sampling)
        if chat:
            if request.messages is None:
                raise RequestError("the chat endpoint needs a 'messages' column")
            response = await self._client.chat.completions.create(
                model=cfg.model_source,
                messages=list(request.messages),
                logprobs=request.sampling.logprobs or None,
                extra_body=extra or None,
                **args,
            )
            choice = response.choices[0]
            text = choice.message.content or ""
            logprobs = None
            if request.sampling.logprobs and choice.logprobs and choice.logprobs.content:
                logprobs = [float(t.logprob) for t in choice.logprobs.content]
        else:
            prompt: Any = request.prompt
            if prompt is None and request.prompt_token_ids is not None:
                prompt = list(request.prompt_token_ids)
            if prompt is None:
                raise RequestError("the completions endpoint needs a 'prompt' column")
            response = await self._client.completions.create(
                model=cfg.model_source,
                prompt=prompt,
                logprobs=1 if request.sampling.logprobs else None,
                extra_body=extra or None,
                **args,
            )
            choice = response.choices[0]
            text = choice.text or ""
            logprobs = None
            if request.sampling.logprobs and choice.logprobs and choice.logprobs.token_logprobs:
                logprobs = [float(x) for x in choice.logprobs.token_logprobs if x is not None]
        usage = response.usage
        return GenerateResult(
            token_ids=None,
            text=text,
            num_input_tokens=int(usage.prompt_tokens) if usage else 0,
            num_generated_tokens=int(usage.completion_tokens) if usage else 0,
            finish_reason=choice.finish_reason,
            latency_s=0.0,
            logprobs=logprobs,
        )

    async def shutdown(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _sampling_args(sampling: SamplingParams) -> tuple[dict[str, Any], dict[str, Any]]:
    """Standard fields, and the ``extra_body`` fields vLLM/SGLang servers understand."""
    args: dict[str, Any] = {
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    }
    if sampling.stop:
        args["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        args["seed"] = sampling.seed
    extra: dict[str, Any] = {}
    if sampling.top_k:
        extra["top_k"] = sampling.top_k
    if sampling.ignore_eos:
        extra["ignore_eos"] = True
    return args, extra


def _with_latency(result: GenerateResult, latency: float) -> GenerateResult:
    from dataclasses import replace

    return replace(result, latency_s=latency)


def _retry_after(error: Any) -> float | None:
    try:
        value = error.response.headers.get("retry-after")
        return None if value is None else max(0.0, float(value))
    except (AttributeError, TypeError, ValueError):
        return None


def _short(error: BaseException | None) -> str:
    text = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
    return text if len(text) <= 300 else text[:297] + "..."
