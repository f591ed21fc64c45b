"""Rollout workers: an LLM engine of ``tideflow.streaming.llm``, n samples per prompt.

Each worker records the behaviour log-prob of every generated token and tags every sample
with the policy version of the weights that generated it. New weights are loaded between
two ``generate`` calls, never during one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.rl._data import Sample
from tideflow.rl.config import ModelConfig, RolloutConfig
from tideflow.rl.errors import RLError

__all__ = ["RolloutWorker", "rollout_transformers_engine"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.rollout")


def rollout_transformers_engine() -> type[Any]:
    """The transformers engine, keeping the end-of-sequence token the policy chose (and its
    log-prob): the trainer learns when to stop from it. (Imported lazily: the engines
    import Ray, which a CLI must configure first.)"""
    from tideflow.streaming.llm.engines.transformers import TransformersEngine

    class RolloutTransformersEngine(TransformersEngine):
        keep_stop_token = True

    return RolloutTransformersEngine


class RolloutWorker:
    """One rollout engine in its own actor."""

    def __init__(self, rollout: RolloutConfig, model: ModelConfig, rank: int = 0) -> None:
        self.config = rollout
        self.model_path = model.path
        self.rank = rank
        self.version = 0
        """The policy version of the weights loaded now."""
        self._engine: Any = None
        self._tokenizer: Any = None
        self.busy_s = 0.0
        """Seconds spent generating and loading weights."""

    async def start(self) -> int:
        """Load the engine and the tokenizer; returns the rank (a readiness probe)."""
        import transformers

        from tideflow.streaming.llm import (
            TransformersEngineConfig,
            VLLMEngineConfig,
            create_engine,
        )

        transformers.utils.logging.disable_progress_bar()
        cfg = self.config
        if cfg.num_threads:
            import torch

            torch.set_num_threads(cfg.num_threads)
        if cfg.engine == "vllm":
            self._engine = create_engine(
                VLLMEngineConfig(model_source=self.model_path, engine_kwargs=cfg.engine_kwargs)
            )
        else:
            engine_config = TransformersEngineConfig(
                model_source=self.model_path,
                device=cfg.device,
                max_batch_size=cfg.max_batch_size,
                num_threads=cfg.num_threads,
                engine_kwargs=cfg.engine_kwargs,
            )
            self._engine = create_engine(engine_config, target=rollout_transformers_engine())
        await self._engine.start()
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_path)
        _log().info("rollout_worker_ready", rank=self.rank, engine=cfg.engine)
        return self.rank

    def _prompt_ids(self, item: Mapping[str, Any]) -> list[int]:
        if "prompt_token_ids" in item:
            return [int(t) for t in item["prompt_token_ids"]]
        return [int(t) for t in self._tokenizer(str(item["prompt"]))["input_ids"]]

    async def generate(
        self, batch: int, items: Sequence[Mapping[str, Any]], seed: int
    ) -> dict[str, Any]:
        """``samples_per_prompt`` samples of each prompt with the weights loaded now.

        Returns ``{"samples": [...], "interval": (start, end), "generate_s": s}`` (samples
        as dicts, unscored). The transformers engine draws the whole call from one seeded
        generator; vLLM gets one seed per request.
        """
        from tideflow.streaming.llm import GenerateRequest, SamplingParams

        cfg = self.config
        requests: list[GenerateRequest] = []
        owners = []
        for position, item in enumerate(items):
            ids = self._prompt_ids(item)
            for k in range(cfg.samples_per_prompt):
                request_seed = seed if cfg.engine == "transformers" else seed + len(requests)
                sampling = SamplingParams(
                    max_tokens=cfg.max_tokens,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    top_k=cfg.top_k,
                    seed=request_seed,
                    logprobs=True,
                )
                requests.append(GenerateRequest(prompt_token_ids=ids, sampling=sampling))
                owners.append((position, k, item, ids))
        started_wall, started = time.time(), time.perf_counter()
        results = await self._engine.generate(requests)
        generate_s = time.perf_counter() - started
        self.busy_s += generate_s
        samples = []
        for (position, _, item, ids), result in zip(owners, results, strict=True):
            if isinstance(result, BaseException):
                raise RLError(f"rollout worker {self.rank}: a request failed: {result}")
            tokens = list(result.token_ids or [])
            logprobs = list(result.logprobs or [])
            if len(logprobs) != len(tokens):
                message = (
                    f"rollout worker {self.rank}: the engine returned {len(logprobs)} "
                    f"log-probs for {len(tokens)} tokens"
                )
                raise RLError(message)
            samples.append(
                Sample(
                    batch=batch,
                    prompt_id=int(item["id"]),
                    group=f"{batch}:{item['id']}:{position}",
                    prompt_token_ids=ids,
                    response_token_ids=tokens,
                    behaviour_logprobs=logprobs,
                    version=self.version,
                    response_text=str(self._tokenizer.decode(tokens, skip_special_tokens=True)),
                    finish_reason=result.finish_reason,
                    item=dict(item),
                ).as_dict()
            )
        return {
            "samples": samples,
            "interval": (started_wall, time.time()),
            "generate_s": generate_s,
        }

    async def load_weights(self, version: int, chunks: Sequence[Any]) -> dict[str, float]:
        """Load published weights chunk by chunk (``chunks``: object refs, or the chunks
        themselves); returns the seconds it took and the bytes loaded."""
        import ray

        started = time.perf_counter()
        nbytes = 0
        for ref in chunks:
            chunk = await asyncio.to_thread(ray.get, ref) if isinstance(ref, ray.ObjectRef) else ref
            nbytes += sum(int(t.numel() * t.element_size()) for _, t in chunk)
            await self._engine.load_weights(chunk)
        self.version = version
        seconds = time.perf_counter() - started
        self.busy_s += seconds
        _log().debug("rollout_weights_loaded", rank=self.rank, version=version, seconds=seconds)
        return {"load_s": seconds, "bytes": float(nbytes)}

    async def greedy(self, prompt_token_ids: Sequence[int], max_tokens: int) -> list[int]:
        """Greedy continuation of one prompt with the weights loaded now (tests)."""
        from tideflow.streaming.llm import GenerateRequest, SamplingParams

        request = GenerateRequest(
            prompt_token_ids=list(prompt_token_ids),
            sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
        )
        (result,) = await self._engine.generate([request])
        if isinstance(result, BaseException):
            raise RLError(f"rollout worker {self.rank}: greedy generation failed: {result}")
        return list(result.token_ids or [])

    def weights(self) -> dict[str, Any]:
        """The engine model's parameters (transformers engine only; tests compare them)."""
        model = getattr(self._engine, "model", None)
        if model is None:
            raise RLError("weights(): only the transformers engine exposes its model")
        return {name: p.detach().cpu().clone() for name, p in model.named_parameters()}

    def get_version(self) -> int:
        return self.version

    async def shutdown(self) -> None:
        if self._engine is not None:
            await self._engine.shutdown()
            self._engine = None
