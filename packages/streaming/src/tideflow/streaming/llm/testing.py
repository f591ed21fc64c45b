"""Test helpers of the LLM operator (public: tests, benchmarks and the RL trainer use them).

- :func:`build_tiny_model` writes a random-weight Qwen2/Llama model with a trained tokenizer
  and a chat template to a directory (no LLM weights ship with anything installable here).
- :class:`OpenAIServer` serves such a model — or an echo model with no weights — over the
  OpenAI protocol (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``) on
  127.0.0.1, in a thread, with fault injection: scripted 429/500/503 answers and slow
  replies, plus a fixed latency per request.

    with OpenAIServer(model_path, faults=[429, 500, OpenAIServer.slow(3.0)]) as server:
        config = OpenAIEngineConfig(model_source=server.model_name, base_url=server.base_url)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.streaming.llm._tiny import CHAT_TEMPLATE, build_tiny_model, sample_texts

__all__ = ["CHAT_TEMPLATE", "OpenAIServer", "Slow", "build_tiny_model", "sample_texts"]

_log = get_logger("tideflow.streaming.llm.testing")


@dataclass(frozen=True)
class Slow:
    """A scripted fault: answer this request only after ``seconds``."""

    seconds: float


Fault = int | Slow
"""An HTTP status to answer with (429, 500, 503, …) or a :class:`Slow` reply."""


class _Model:
    """Greedy generation with a ``transformers`` model, one request at a time."""

    def __init__(self, path: str) -> None:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
        self.max_len = int(self.model.config.max_position_embeddings)
        self.eos = self.model.generation_config.eos_token_id
        self._lock = threading.Lock()

    def template(self, messages: list[dict[str, Any]]) -> list[int]:
        return list(
            self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )

    def encode(self, prompt: str | list[int]) -> list[int]:
        return (
            list(prompt) if isinstance(prompt, list) else list(self.tokenizer(prompt)["input_ids"])
        )

    def generate(self, ids: list[int], max_tokens: int) -> tuple[str, int, str]:
        import torch

        with self._lock, torch.inference_mode():
            out = self.model.generate(
                torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False
            )
        new = out[0, len(ids) :].tolist()
        finish = "length"
        if self.eos in new:
            new, finish = new[: new.index(self.eos)], "stop"
        return str(self.tokenizer.decode(new, skip_special_tokens=True)), len(new), finish


class _BadRequest(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 refuses connections when 64 clients connect at once


class OpenAIServer:
    """An OpenAI-protocol HTTP server on 127.0.0.1 (a free port), run in a daemon thread.

    ``model_path`` is a directory from :func:`build_tiny_model` (greedy decoding, whatever
    the sampling parameters), or ``None`` for an echo model: the reply is the prompt's words
    reversed, truncated to ``max_tokens`` words, with no model cost (benchmarks of the HTTP
    path). Requests whose prompt plus ``max_tokens`` exceed the model's length, or whose
    chat template fails, get HTTP 400, as vLLM answers them.

    ``faults`` are used one per request in arrival order; ``latency_s`` is added to every
    request (without holding a lock: concurrent requests overlap, as on a real server).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str = "tiny",
        faults: Iterable[Fault] = (),
        latency_s: float = 0.0,
        port: int = 0,
    ) -> None:
        self.model_name = model_name
        self.latency_s = latency_s
        self._faults: deque[Fault] = deque(faults)
        self._model = _Model(str(model_path)) if model_path is not None else None
        self._lock = threading.Lock()
        self.requests = 0
        """Requests received (faulted ones included)."""
        self.faulted: Counter[str] = Counter()
        """Faults served, by kind (``"429"``, ``"500"``, ``"slow"``)."""
        self.prompts: Counter[str] = Counter()
        """Successful answers per prompt text (or last user message)."""
        self._server = _Server(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    @staticmethod
    def slow(seconds: float) -> Slow:
        """A fault: a reply delayed by ``seconds``."""
        return Slow(seconds)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what an OpenAI client takes as ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def add_faults(self, faults: Iterable[Fault]) -> None:
        """Script more faults for the next requests."""
        with self._lock:
            self._faults.extend(faults)

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="openai-test-server", daemon=True
        )
        self._thread.start()
        _log.info("openai_test_server_started", base_url=self.base_url, echo=self._model is None)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling -------------------------------------------------------------
    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.requests += 1
            return self._faults.popleft() if self._faults else None

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fault = self._next_fault()
        if isinstance(fault, Slow):
            with self._lock:
                self.faulted["slow"] += 1
            time.sleep(fault.seconds)
        elif fault is not None:
            with self._lock:
                self.faulted[str(fault)] += 1
            return fault, _error(fault, "injected fault")
        if self.latency_s:
            time.sleep(self.latency_s)
        if body.get("model") != self.model_name:
            return 404, _error(404, f"model {body.get('model')!r} does not exist")
        chat = path.endswith("/chat/completions")
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        try:
            if chat:
                messages = body["messages"]
                key = str(messages[-1].get("content", ""))
            else:
                prompt = body["prompt"]
                key = prompt if isinstance(prompt, str) else json.dumps(prompt)
            text, prompt_tokens, completion_tokens, finish = self._generate(body, chat, max_tokens)
        except _BadRequest as error:
            return 400, _error(400, str(error))
        except (KeyError, TypeError) as error:
            return 400, _error(400, f"malformed request: {error}")
        with self._lock:
            self.prompts[key] += 1
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        common = {"id": f"cmpl-{uuid.uuid4().hex[:12]}", "created": int(time.time())}
        if chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
            return 200, {
                **common,
                "object": "chat.completion",
                "model": self.model_name,
                "choices": [choice],
                "usage": usage,
            }
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return 200, {
            **common,
            "object": "text_completion",
            "model": self.model_name,
            "choices": [choice],
            "usage": usage,
        }

    def _generate(
        self, body: dict[str, Any], chat: bool, max_tokens: int
    ) -> tuple[str, int, int, str]:
        model = self._model
        if model is None:  # echo
            words = (
                " ".join(str(m.get("content", "")) for m in body["messages"])
                if chat
                else str(body["prompt"])
            ).split()
            reply = list(reversed(words))[:max_tokens]
            finish = "length" if len(reply) == max_tokens < len(words) else "stop"
            return " ".join(reply), len(words), len(reply), finish
        if chat:
            try:
                ids = model.template(body["messages"])
            except Exception as error:  # a template that raises: the request is bad
                raise _BadRequest(f"chat template failed: {error}") from error
        else:
            ids = model.encode(body["prompt"])
        if len(ids) + max_tokens > model.max_len:
            message = (
                f"This model's maximum context length is {model.max_len} tokens; the prompt "
                f"has {len(ids)} and max_tokens is {max_tokens}"
            )
            raise _BadRequest(message)
        text, count, finish = model.generate(ids, max_tokens)
        return text, len(ids), count, finish

    def _models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model"}]}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, server._models())
                else:
                    self._send(404, _error(404, f"no route {self.path}"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError as error:
                    self._send(400, _error(400, f"invalid JSON: {error}"))
                    return
                if not self.path.endswith(("/chat/completions", "/completions")):
                    self._send(404, _error(404, f"no route {self.path}"))
                    return
                status, payload = server._answer(self.path, body)
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests and benchmarks own the output

        return Handler


def _error(status: int, message: str) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}
    return {
        "error": {"message": message, "type": kinds.get(status, "server_error"), "code": status}
    }
