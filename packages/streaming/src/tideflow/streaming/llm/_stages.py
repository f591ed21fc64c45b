"""The batch functions of the LLM operator's stages (one instance per actor).

Per-row failures without re-running good rows: each stage computes every row's outcome
(new columns, or the exception that failed the row) and, when some rows failed, raises
:class:`~tideflow.streaming.RecordErrors` naming them with the good rows as the batch's
output. The stage worker sends the named rows to the dead letters with their own errors
and passes the rest on, so a batch of 64 rows with one bad prompt runs the engine once.
Each stage converts only the columns it reads to Python; the others pass through as Arrow.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ClassVar, TypeVar

import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.streaming.errors import ConfigError, RecordErrors
from tideflow.streaming.llm._config import ProcessorConfig
from tideflow.streaming.llm._engine import (
    EngineCrashedError,
    EngineTarget,
    GenerateRequest,
    GenerateResult,
    RequestError,
    create_engine,
)

__all__ = [
    "ChatTemplateStage",
    "DetokenizeStage",
    "EngineStage",
    "RowFunctionStage",
    "TokenizeStage",
]

_log = get_logger("tideflow.streaming.llm.stages")

_T = TypeVar("_T")

_TYPES: dict[str, pa.DataType] = {
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


class _RowStage:
    """Base of the stages: per-row outcomes, failed rows named, typed output columns."""

    reads: ClassVar[tuple[str, ...] | None] = None
    """The columns :meth:`process` looks at (``None``: the whole row)."""

    def __init__(self) -> None:
        pass

    def process(self, rows: list[dict[str, Any]]) -> list[Outcome]:
        """New column values per row (a dict), or the exception that failed the row."""
        raise NotImplementedError

    def __call__(self, table: pa.Table) -> pa.Table:
        view = table
        if self.reads is not None:
            view = table.select([c for c in self.reads if c in table.column_names])
        outcomes = self.process(view.to_pylist())
        if len(outcomes) != table.num_rows:
            raise RuntimeError(f"{type(self).__name__} returned a wrong number of outcomes")
        failed = {i: o for i, o in enumerate(outcomes) if isinstance(o, BaseException)}
        if not failed:
            return self._output(table, outcomes)  # type: ignore[arg-type]
        if len(failed) == table.num_rows:
            raise RecordErrors(failed, output=None)
        good = [i for i in range(table.num_rows) if i not in failed]
        output = self._output(table.take(good), [outcomes[i] for i in good])  # type: ignore[misc]
        raise RecordErrors(failed, output=output)

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
        return table


def _capture(fn: Callable[..., _T], *args: Any) -> _T | BaseException:
    try:
        return fn(*args)
    except Exception as error:
        return error


class RowFunctionStage(_RowStage):
    """A user's row function (preprocess, postprocess): its dict updates the row."""

    def __init__(self, fn: Callable[[dict[str, Any]], Mapping[str, Any]]) -> None:
        super().__init__()
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

    reads = ("messages", "prompt")

    def __init__(self, model_source: str, chat_template: str | None = None) -> None:
        super().__init__()
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

    reads = ("prompt",)

    def __init__(self, model_source: str, *, templated: bool) -> None:
        super().__init__()
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

    reads = ("generated_tokens",)

    def __init__(self, model_source: str) -> None:
        super().__init__()
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

    reads = ("prompt_token_ids", "prompt", "messages", "sampling_params", "text")

    def __init__(self, config: ProcessorConfig, engine: EngineTarget | None = None) -> None:
        super().__init__()
        self._config = config
        self._loop = _Loop()
        self.engine = create_engine(config.engine, engine)
        self.engine.prepare()
        self._loop.run(self.engine.start())
        spec = config.engine
        self._embed = spec.embeds

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
