"""Local models through ``transformers``: batched ``generate`` on CPU or GPU, and embeddings.

Requests are grouped by sampling parameters (one ``generate`` call needs one set) into
chunks of ``max_batch_size``, left-padded, and run one chunk at a time: torch already uses
every core of the actor, so overlapping chunks would only contend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm._config import SamplingParams, TransformersEngineConfig
from tideflow.streaming.llm._engine import (
    GenerateRequest,
    GenerateResult,
    RequestError,
)
from tideflow.streaming.llm.engines._shared import (
    InProcessEngine,
    embed_in_chunks,
    load_pretrained,
    max_model_len,
)

__all__ = ["TransformersEngine"]

_log = get_logger("tideflow.streaming.llm.transformers")


class TransformersEngine(InProcessEngine):
    """``transformers`` models in the actor's process."""

    config: TransformersEngineConfig
    keep_stop_token: bool = False
    """True: a row that ended on end-of-sequence keeps that token, with its log-prob, last in
    ``token_ids`` (as vLLM returns it); the RL trainer trains on it. Set by subclassing."""

    def _load(self) -> None:
        cfg = self.config
        auto = "AutoModel" if cfg.task == "embed" else "AutoModelForCausalLM"
        self._model, self._tokenizer = load_pretrained(cfg, auto)
        self._max_len = max_model_len(self._model, cfg)
        _log.info(
            "llm_engine_loaded",
            engine="transformers",
            model=cfg.model_source,
            device=cfg.device,
            task=cfg.task,
            max_model_len=self._max_len,
        )

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def model(self) -> Any:
        """The loaded ``transformers`` model (the RL trainer reads its config)."""
        return self._model

    async def generate(
        self, requests: Sequence[GenerateRequest]
    ) -> list[GenerateResult | BaseException]:
        results: list[GenerateResult | BaseException | None] = [None] * len(requests)
        groups: dict[SamplingParams, list[tuple[int, list[int]]]] = {}
        for i, request in enumerate(requests):
            try:
                ids = self._token_ids(request)
            except RequestError as error:
                results[i] = error
                continue
            groups.setdefault(request.sampling, []).append((i, ids))
        async with self._lock:
            for sampling, items in groups.items():
                size = self.config.max_batch_size
                for start in range(0, len(items), size):
                    chunk = items[start : start + size]
                    outs = await asyncio.to_thread(self._generate_chunk, chunk, sampling)
                    for (i, _), out in zip(chunk, outs, strict=True):
                        results[i] = out
        return [r if r is not None else RuntimeError("request not run") for r in results]

    def _token_ids(self, request: GenerateRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            ids = list(request.prompt_token_ids)
        elif request.prompt is not None:
            ids = list(self._tokenizer(request.prompt)["input_ids"])
        elif request.messages is not None:
            ids = list(
                self._tokenizer.apply_chat_template(
                    list(request.messages),
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=False,
                )
            )
        else:
            raise RequestError("the request has no prompt_token_ids, prompt or messages")
        if not ids:
            raise RequestError("the prompt is empty")
        if len(ids) + request.sampling.max_tokens > self._max_len:
            message = (
                f"prompt of {len(ids)} tokens + max_tokens {request.sampling.max_tokens} "
                f"exceeds the model's max_model_len {self._max_len}"
            )
            raise RequestError(message)
        return ids

    def _generate_chunk(
        self, chunk: list[tuple[int, list[int]]], sampling: SamplingParams
    ) -> list[GenerateResult]:
        import torch

        started = time.perf_counter()
        pad = self._tokenizer.pad_token_id
        eos = self._model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        pad = pad if pad is not None else next(iter(eos_ids), 0)
        width = max(len(ids) for _, ids in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (_, ids) in enumerate(chunk):  # left padding: generation continues on the right
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            mask[row, width - len(ids) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "do_sample": sampling.temperature > 0,
            "pad_token_id": pad,
            "return_dict_in_generate": True,
            "output_scores": sampling.logprobs,
        }
        if sampling.temperature > 0:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
            kwargs["top_k"] = sampling.top_k or None
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
        if sampling.ignore_eos:
            kwargs["min_new_tokens"] = sampling.max_tokens
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self._tokenizer)
        device = self.config.device
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), **kwargs
            )
        new = out.sequences[:, width:].tolist()
        scores = None
        if sampling.logprobs:
            scores = self._model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            ).tolist()
        latency = time.perf_counter() - started
        results = []
        for row, ((_, ids), tokens) in enumerate(zip(chunk, new, strict=True)):
            end = len(tokens)
            finish = "length"
            for position, token in enumerate(tokens):
                if token in eos_ids and not sampling.ignore_eos:
                    end, finish = position, "stop"
                    break
            if finish == "length" and sampling.stop and end < sampling.max_tokens:
                finish = "stop"  # a stop string ended it early
            elif finish == "stop" and self.keep_stop_token and end < len(tokens):
                end += 1  # the end-of-sequence token stays
            # After the eos token a finished row is padded; neither is part of the output.
            results.append(
                GenerateResult(
                    token_ids=[int(t) for t in tokens[:end]],
                    text=None,
                    num_input_tokens=len(ids),
                    num_generated_tokens=end,
                    finish_reason=finish,
                    latency_s=latency,
                    logprobs=None if scores is None else [float(s) for s in scores[row][:end]],
                )
            )
        return results

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        size = self.config.max_batch_size
        return await embed_in_chunks(self._lock, texts, size, self._embed_chunk)

    def _embed_chunk(self, texts: list[str]) -> list[list[float]]:
        import torch

        tokenizer = self._tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_len, return_tensors="pt"
        ).to(self.config.device)
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        if self.config.normalize_embeddings:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        vectors: list[list[float]] = pooled.float().cpu().tolist()
        return vectors

    async def load_weights(self, weights: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        items = weights.items() if isinstance(weights, Mapping) else weights
        async with self._lock:
            await asyncio.to_thread(self._load_weights, items)

    def _load_weights(self, items: Iterable[tuple[str, Any]]) -> None:
        import torch

        params = dict(self._model.named_parameters())
        buffers = dict(self._model.named_buffers())
        unknown = []
        with torch.no_grad():
            for name, tensor in items:
                target = params.get(name, buffers.get(name))
                if target is None:
                    unknown.append(name)
                    continue
                target.copy_(tensor.to(target.device, target.dtype))
        if unknown:
            message = f"load_weights: the model has no parameters named {sorted(unknown)[:5]}"
            raise ConfigError(message)

    async def shutdown(self) -> None:
        self._model = None
