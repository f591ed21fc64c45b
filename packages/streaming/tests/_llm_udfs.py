"""Row functions of the LLM tests (importable by Ray workers) and the direct reference."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tideflow.streaming.llm import GenerateRequest, GenerateResult, TransformersEngineConfig
from tideflow.streaming.llm.engines.transformers import TransformersEngine


@dataclass(frozen=True, kw_only=True)
class DiesOnceConfig(TransformersEngineConfig):
    """The transformers engine, whose actor process dies once (SIGKILL) in its second call."""

    kind: ClassVar[str] = "test-dies-once"
    flag: str = ""
    """Created just before the kill, so that only the first actor dies."""


class DiesOnceEngine(TransformersEngine):
    def __init__(self, config: DiesOnceConfig) -> None:
        super().__init__(config)
        self._calls = 0

    async def generate(
        self, requests: Sequence[GenerateRequest]
    ) -> list[GenerateResult | BaseException]:
        self._calls += 1
        flag = Path(self.config.flag)  # type: ignore[attr-defined]
        if self._calls == 2 and not flag.exists():
            flag.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)  # as a segfault or an OOM kill would
        return await super().generate(requests)


def to_chat(row: dict[str, Any]) -> dict[str, Any]:
    """A question becomes a one-message chat; the row's ``role`` (default user) is used."""
    return {"messages": [{"role": row.get("role") or "user", "content": row["text"]}]}


def to_prompt(row: dict[str, Any]) -> dict[str, Any]:
    """Even ids ask through the chat endpoint, odd ids through completions."""
    if row["id"] % 2 == 0:
        return {"messages": [{"role": "user", "content": row["text"]}]}
    return {"prompt": row["text"]}


def keep_answer(row: dict[str, Any]) -> dict[str, Any]:
    return {"answer": row["generated_text"]}


def direct_generate(model_path: str, prompts: list[Any], max_tokens: int) -> list[list[int]]:
    """Greedy ``generate`` on each prompt alone (chat messages or text), cut at eos."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    eos = model.generation_config.eos_token_id
    outputs = []
    for prompt in prompts:
        if isinstance(prompt, list):
            ids = list(
                tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
            )
        else:
            ids = list(tokenizer(prompt)["input_ids"])
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False)
        new = out[0, len(ids) :].tolist()
        outputs.append(new[: new.index(eos)] if eos in new else new)
    return outputs


def decode(model_path: str, tokens: list[list[int]]) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return [str(t) for t in tokenizer.batch_decode(tokens, skip_special_tokens=True)]
