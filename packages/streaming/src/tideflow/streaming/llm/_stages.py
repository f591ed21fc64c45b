"""The batch functions of the LLM operator's stages (one instance per actor).

Per-row failures without re-running good rows: the engine's stage worker isolates failing
rows by calling the function again on halves of the batch. Each stage here keeps every
row's outcome (new columns, or the exception) in a small cache keyed by a row id, and
raises when any row of the batch failed; the calls on halves are then answered from the
cache, so a batch of 64 rows with one bad prompt runs the engine once, not ~12 times, and
the bad row alone becomes a dead letter with its own error. The first stage keys rows by
their content and gives each a random id (column :data:`ROW_ID`); the last drops it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm._config import ProcessorConfig, TransformersEngineConfig
from tideflow.streaming.llm._engine import (
    EngineCrashedError,
    GenerateRequest,
    GenerateResult,
    LLMError,
    RequestError,
    create_engine,
)

__all__ = [
    "ROW_ID",
    "ChatTemplateStage",
    "DetokenizeStage",
    "EngineStage",
    "RowFunctionStage",
    "RowsFailedError",
    "TokenizeStage",
]

_log = get_logger("tideflow.streaming.llm.stages")

ROW_ID = "__llm_row_id"
"""Internal column that identifies a row between the processor's stages."""

_CACHE_LIMIT = 100_000
_T = TypeVar("_T")

_TYPES: dict[str, pa.DataType] = {
    ROW_ID: pa.string(),
    "prompt": pa.string(),
    "prompt_token_ids": pa.list_(pa.int32()),
    "generated_tokens": pa.list_(pa.int32()),
    "generated_text": pa.string(),
    "generated_logprobs": pa.list_(pa.float64()),
    "num_input_tokens": pa.int32(),
    "num_generated_tokens": pa.int32(),
    "finish_reason": pa.string(),
    "latency_s": pa.float64(),
    "embeddings": pa.list_(pa.float32()),
}
"""Arrow types of the columns the stages write (kept the same in every batch)."""

Outcome = dict[str, Any] | BaseException


class RowsFailedError(LLMError):
    """Some rows of a batch failed; raised so that the stage worker isolates them (the good
    rows are answered from the stage's cache when it retries)."""


class _RowStage:
    """Base of the stages: per-row outcomes, the row-id cache, typed output columns."""

    def __init__(self, *, drop_row_id: bool = False) -> None:
        self._drop_row_id = drop_row_id
        self._cache: OrderedDict[str, Outcome] = OrderedDict()

    def process(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        """New column values per row (a dict), or the exception that failed the row."""
        raise NotImplementedError

    def __call__(self, table: pa.Table) -> pa.Table:
        assign = ROW_ID not in table.column_names
        rows = table.to_pylist()
        keys = [_content_key(r) for r in rows] if assign else [r[ROW_ID] for r in rows]
        todo = [i for i, key in enumerate(keys) if key not in self._cache]
        if todo:
            outcomes = self.process([rows[i] for i in todo])
            if len(outcomes) != len(todo):
                raise RuntimeError(f"{type(self).__name__} returned a wrong number of outcomes")
            for i, outcome in zip(todo, outcomes, strict=True):
                self._cache[keys[i]] = outcome
            while len(self._cache) > _CACHE_LIMIT:
                self._cache.popitem(last=False)
        outcomes = [self._cache[key] for key in keys]
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            if len(rows) == 1:
                self._cache.pop(keys[0], None)
                raise failures[0]
            raise RowsFailedError(f"{len(failures)} of {len(rows)} rows failed: {failures[0]}")
        for key in keys:
            self._cache.pop(key, None)
        columns = [dict(o) for o in outcomes if isinstance(o, dict)]
        if assign:
            for column in columns:
                column[ROW_ID] = uuid.uuid4().hex
        return self._output(table, columns)

    def _output(self, table: pa.Table, columns: list[dict[str, Any]]) -> pa.Table:
        names: dict[str, None] = {}
        for column in columns:
            names.update(dict.fromkeys(column))
        for name in names:
            values = [c.get(name) for c in columns]
            array = pa.array(values, type=_TYPES.get(name))
            index = table.schema.get_field_index(name)
            if index >= 0:
                table = table.set_column(index, name, array)
            else:
                table = table.append_column(name, array)
        if self._drop_row_id and ROW_ID in table.column_names:
            table = table.drop_columns([ROW_ID])
        return table


def _content_key(row: dict[str, Any]) -> str:
    text = json.dumps(row, sort_keys=True, default=str).encode()
    return hashlib.blake2b(text, digest_size=16).hexdigest()


def _capture(fn: Callable[..., _T], *args: Any) -> _T | BaseException:
    try:
        return fn(*args)
    except Exception as error:
        return error


class RowFunctionStage(_RowStage):
    """A user's row function (preprocess, postprocess): its dict updates the row."""

    def __init__(self, fn: Callable[[dict[str, Any]], Mapping[str, Any]], **options: Any) -> None:
        super().__init__(**options)
        self._fn = fn

    def process(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        return [_capture(self._call, row) for row in rows]

    def _call(self, row: dict[str, Any]) -> dict[str, Any]:
        out = self._fn(dict(row))
        if not isinstance(out, Mapping):
            raise ConfigError(f"a row function must return a dict; got {type(out).__name__}")
        return dict(out)


def _load_tokenizer(model_source: str, chat_template: str | None = None) -> Any:
    import transformers

    transformers.utils.logging.disable_progress_bar()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_source)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


class ChatTemplateStage(_RowStage):
    """``messages`` → ``prompt`` with the model's chat template (rows with a prompt pass)."""

    def __init__(self, model_source: str, chat_template: str | None = None, **options: Any):
        super().__init__(**options)
        self._tokenizer = _load_tokenizer(model_source, chat_template)

    def process(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        return [_capture(self._one, row) for row in rows]

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        messages = row.get("messages")
        if messages is None:
            if row.get("prompt") is None:
                raise RequestError("the row has neither 'messages' nor 'prompt'")
            return {}
        try:
            prompt = self._tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        except Exception as error:  # jinja errors, raise_exception() in templates
            raise RequestError(f"chat template failed: {type(error).__name__}: {error}") from error
        return {"prompt": str(prompt)}


class TokenizeStage(_RowStage):
    """``prompt`` → ``prompt_token_ids`` (a prompt from a chat template gets no extra
    special tokens: the template wrote them)."""

    def __init__(self, model_source: str, *, templated: bool, **options: Any) -> None:
        super().__init__(**options)
        self._tokenizer = _load_tokenizer(model_source)
        self._add_special = not templated

    def process(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        outcomes: list[Outcome] = [RequestError("the row has no 'prompt'")] * len(rows)
        found = [(i, r["prompt"]) for i, r in enumerate(rows) if r.get("prompt") is not None]
        if found:
            encoded = self._tokenizer([p for _, p in found], add_special_tokens=self._add_special)[
                "input_ids"
            ]
            for (i, _), ids in zip(found, encoded, strict=True):
                outcomes[i] = {"prompt_token_ids": list(ids)}
        return outcomes


class DetokenizeStage(_RowStage):
    """``generated_tokens`` → ``generated_text`` (special tokens skipped)."""

    def __init__(self, model_source: str, **options: Any) -> None:
        super().__init__(**options)
        self._tokenizer = _load_tokenizer(model_source)

    def process(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        tokens = [r.get("generated_tokens") or [] for r in rows]
        texts = self._tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [{"generated_text": text} for text in texts]


class _Loop:
    """An event loop on a daemon thread: the stage's synchronous calls run coroutines on it,
    so async engines keep their requests in flight across the engine's calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="tideflow-llm-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


class EngineStage(_RowStage):
    """Runs the engine: ``prompt_token_ids`` / ``prompt`` / ``messages`` → generations (or
    ``text`` → ``embeddings``). Rows of a batch go to the engine in calls of
    ``batch_size``, all at once: the engine's own limits decide how many run together."""

    def __init__(self, config: ProcessorConfig, **options: Any) -> None:
        super().__init__(**options)
        self._config = config
        self._loop = _Loop()
        self.engine = create_engine(config.engine)
        self.engine.prepare()
        self._loop.run(self.engine.start())
        engine = config.engine
        self._embed = isinstance(engine, TransformersEngineConfig) and engine.task == "embed"

    def process(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        try:
            if self._embed:
                return self._loop.run(self._embed_rows(rows))
            return self._loop.run(self._generate_rows(rows))
        except EngineCrashedError as error:
            # Rows are not at fault: end the process so that the pool restarts the actor
            # (a fresh engine) and retries this batch, up to max_retries times.
            _log.error("llm_engine_crashed", error=str(error), rows=len(rows))
            os._exit(1)

    async def _generate_rows(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(rows)
        requests: list[tuple[int, GenerateRequest]] = []
        for i, row in enumerate(rows):
            request = _capture(self._request, row)
            if isinstance(request, BaseException):
                outcomes[i] = request
            else:
                requests.append((i, request))
        size = self._config.batch_size
        chunks = [requests[s : s + size] for s in range(0, len(requests), size)]
        results = await asyncio.gather(
            *(self.engine.generate([r for _, r in chunk]) for chunk in chunks)
        )
        for chunk, chunk_results in zip(chunks, results, strict=True):
            for (i, _), result in zip(chunk, chunk_results, strict=True):
                outcomes[i] = result if isinstance(result, BaseException) else _columns(result)
        return [o if o is not None else RuntimeError("row not run") for o in outcomes]

    def _request(self, row: dict[str, Any]) -> GenerateRequest:
        try:
            sampling = self._config.sampling.merged(row.get("sampling_params"))
        except ConfigError as error:
            raise RequestError(str(error)) from error
        ids = row.get("prompt_token_ids")
        return GenerateRequest(
            prompt_token_ids=ids,
            prompt=row.get("prompt"),
            messages=row.get("messages"),
            sampling=sampling,
        )

    async def _embed_rows(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        texts = [r.get("text", r.get("prompt")) for r in rows]
        good = [(i, t) for i, t in enumerate(texts) if isinstance(t, str)]
        outcomes: list[Outcome] = [RequestError("the row has no 'text' to embed")] * len(rows)
        vectors = await self.engine.embed([t for _, t in good]) if good else []
        for (i, _), vector in zip(good, vectors, strict=True):
            outcomes[i] = {"embeddings": vector}
        return outcomes

    def __del__(self) -> None:
        try:
            self._loop.run(self.engine.shutdown())
            self._loop.loop.call_soon_threadsafe(self._loop.loop.stop)
        except Exception:  # interpreter shutdown: nothing left to release
            return


def _columns(result: GenerateResult) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "num_input_tokens": result.num_input_tokens,
        "num_generated_tokens": result.num_generated_tokens,
        "finish_reason": result.finish_reason,
        "latency_s": result.latency_s,
        "generated_logprobs": result.logprobs,
    }
    if result.token_ids is not None:
        columns["generated_tokens"] = result.token_ids
    if result.text is not None:
        columns["generated_text"] = result.text
    return columns
