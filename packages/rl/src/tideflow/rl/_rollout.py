"""Rollout workers: an LLM engine of ``tideflow.streaming.llm``, n samples per prompt.

Each worker records the behaviour log-prob of every generated token and tags every token
with the policy version of the weights that generated it. New weights are loaded between
two ``generate`` calls; with partial rollouts also between two segments of one, so a long
generation that spans a weight update continues, from its prompt and the tokens so far,
with the new weights.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.rl._data import Sample
from tideflow.rl._weights import from_wire
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
        self._offered: tuple[int, list[Any]] | None = None
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

    def _prompt_text(self, item: Mapping[str, Any], ids: list[int]) -> str:
        if "prompt" in item:
            return str(item["prompt"])
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))

    def offer_weights(self, version: int, chunks: Sequence[Any]) -> None:
        """Newer published weights: loaded before the next ``generate`` call, or with
        partial rollouts before the next segment of the one running."""
        if self._offered is None or version > self._offered[0]:
            self._offered = (version, list(chunks))

    async def _load_offered(self) -> float:
        offered = self._offered
        if offered is None or offered[0] <= self.version:
            return 0.0
        return (await self.load_weights(*offered))["load_s"]

    async def generate(
        self,
        batch: int,
        items: Sequence[Mapping[str, Any]],
        seed: int,
        positions: Sequence[int] | None = None,
        weights: tuple[int, Sequence[Any]] | None = None,
    ) -> dict[str, Any]:
        """``samples_per_prompt`` samples of each prompt (at ``positions`` of the batch).

        ``weights`` (``(version, chunks)``): the newest published weights, loaded first when
        this worker is behind them. Returns ``{"samples": [...], "interval": (start, end),
        "generate_s": s, "load_s": s}`` (samples as dicts, unscored). The transformers
        engine draws each call from one seeded generator; vLLM gets one seed per request.
        """
        if weights is not None:
            self.offer_weights(*weights)
        started_wall, started = time.time(), time.perf_counter()
        load_s = await self._load_offered()
        first_version = self.version
        owners = []
        texts: dict[int, str] = {}  # position -> the prompt as text
        for position, item in zip(positions or range(len(items)), items, strict=True):
            ids = self._prompt_ids(item)
            texts[position] = self._prompt_text(item, ids)
            owners += [(position, item, ids)] * self.config.samples_per_prompt
        rows, loaded_s = await self._generate_rows([ids for _, _, ids in owners], seed)
        load_s += loaded_s
        samples = [
            Sample(
                batch=batch,
                prompt_id=int(item["id"]),
                group=f"{batch}:{item['id']}:{position}",
                prompt_token_ids=ids,
                response_token_ids=row["tokens"],
                behaviour_logprobs=row["logprobs"],
                version=row["versions"][0] if row["versions"] else first_version,
                response_text=str(self._tokenizer.decode(row["tokens"], skip_special_tokens=True)),
                finish_reason=row["finish"],
                item=dict(item),
                prompt_text=texts[position],
                token_versions=row["versions"],
            ).as_dict()
            for (position, item, ids), row in zip(owners, rows, strict=True)
        ]
        seconds = time.perf_counter() - started
        self.busy_s += seconds - load_s  # loading counts in load_weights
        return {
            "samples": samples,
            "interval": (started_wall, time.time()),
            "generate_s": seconds - load_s,
            "load_s": load_s,
        }

    async def generate_shard(
        self,
        batch: int,
        items: Sequence[Mapping[str, Any]],
        seed: int,
        positions: Sequence[int],
        weights: tuple[int, Sequence[Any]] | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`generate`, and apart from it the figures the pool reads (call it with
        ``num_returns=2``: the samples go on to the reward worker, the driver reads only
        the figures)."""
        part = await self.generate(batch, items, seed, positions, weights)
        versions = [v for s in part["samples"] for v in s["token_versions"]] or [self.version]
        meta = {
            "rank": self.rank,
            "interval": part["interval"],
            "generate_s": part["generate_s"],
            "load_s": part["load_s"],
            "versions": (min(versions), max(versions)),
        }
        return meta, part

    async def _generate_rows(
        self, prompts: list[list[int]], seed: int
    ) -> tuple[list[dict[str, Any]], float]:
        """Generate every prompt to its end; with partial rollouts in segments, loading newer
        offered weights between two. Returns one row per prompt (tokens, log-probs,
        per-token versions, finish reason) and the seconds spent loading weights."""
        from tideflow.streaming.llm import GenerateRequest

        cfg = self.config
        segment = cfg.segment_tokens if cfg.partial_rollout else cfg.max_tokens
        rows: list[dict[str, Any]] = [
            {"tokens": [], "logprobs": [], "versions": [], "finish": None} for _ in prompts
        ]
        load_s, number = 0.0, 0
        while True:
            open_rows = [i for i, row in enumerate(rows) if row["finish"] is None]
            if not open_rows:
                break
            if number > 0:
                load_s += await self._load_offered()  # between two segments only
            requests: list[GenerateRequest] = []
            for i in open_rows:
                done = len(rows[i]["tokens"])
                sampling = self._sampling(
                    min(segment, cfg.max_tokens - done), seed, number, len(requests)
                )
                ids = prompts[i] + rows[i]["tokens"]
                requests.append(GenerateRequest(prompt_token_ids=ids, sampling=sampling))
            results = await self._engine.generate(requests)
            for i, result in zip(open_rows, results, strict=True):
                self._append(rows[i], result)
            number += 1
        return rows, load_s

    def _sampling(self, max_tokens: int, seed: int, segment: int, request: int) -> Any:
        from tideflow.streaming.llm import SamplingParams

        cfg = self.config
        # The first segment draws as a whole generation did (seeds unchanged); later ones
        # draw from seeds of their own.
        seed = (seed + segment * 1_000_003) % (2**31 - 1)
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            seed=seed if cfg.engine == "transformers" else seed + request,
            logprobs=True,
        )

    def _append(self, row: dict[str, Any], result: Any) -> None:
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
        row["tokens"] += tokens
        row["logprobs"] += logprobs
        row["versions"] += [self.version] * len(tokens)
        if result.finish_reason != "length" or len(row["tokens"]) >= self.config.max_tokens:
            row["finish"] = result.finish_reason
        elif not tokens:  # nothing more came: do not ask again
            row["finish"] = "length"

    async def load_weights(self, version: int, chunks: Sequence[Any]) -> dict[str, float]:
        """Load published weights chunk by chunk (``chunks``: object refs, or the chunks
        themselves); returns the seconds it took and the bytes loaded."""
        import ray

        started = time.perf_counter()
        nbytes = 0
        for ref in chunks:
            chunk = await asyncio.to_thread(ray.get, ref) if isinstance(ref, ray.ObjectRef) else ref
            chunk = from_wire(chunk)
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
