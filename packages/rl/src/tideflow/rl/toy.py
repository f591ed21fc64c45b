"""The toy task of the demo, the tests and the benchmark: digit-sequence completion.

A prompt is the start of an arithmetic sequence of digits modulo 10 followed by ``=``
(``"3 5 7 ="``); the answer is its next ``answer_len`` digits and end-of-sequence
(``"9 1 3"``). The rule reward gives the fraction of answer digits right, plus one share
for stopping right after them. A tiny Qwen2 model with a word-level tokenizer (digits,
``=``, pad, end-of-sequence) is built locally — no weights are downloaded — and a short
supervised warm-up teaches it the format, after which RL improves the digits.

>>> task = DigitTask()
>>> path = build_digit_model("/tmp/tiny-digits", task=task)          # doctest: +SKIP
>>> warm_up(path, task=task, steps=60)                              # doctest: +SKIP
>>> reward({"prompt": "3 5 7 =", "answer": "9 1 3"}, "9 1 4")
0.5
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tideflow.core.observability import get_logger
from tideflow.rl.errors import ConfigError

__all__ = ["DigitTask", "build_digit_model", "reward", "warm_up"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.toy")

EOS, UNK = "<eos>", "<unk>"
_VOCAB = [EOS, UNK, "=", *[str(d) for d in range(10)]]


@dataclass(frozen=True, kw_only=True)
class DigitTask:
    """Arithmetic digit sequences modulo 10: ``prompt_len`` digits shown, ``answer_len`` asked."""

    prompt_len: int = 3
    """Digits shown in the prompt (≥ 2: the step is their difference)."""
    answer_len: int = 3
    """Digits to complete."""
    steps: tuple[int, ...] = (1, 2, 3)
    """The possible differences between consecutive digits."""

    def __post_init__(self) -> None:
        if self.prompt_len < 2 or self.answer_len < 1 or not self.steps:
            message = (
                "DigitTask: prompt_len must be >= 2, answer_len >= 1 and steps non-empty; got "
                f"{self.prompt_len}, {self.answer_len}, {self.steps}"
            )
            raise ConfigError(message)

    def item(self, start: int, step: int) -> dict[str, str]:
        """The prompt and answer of the sequence ``start, start + step, …`` (mod 10)."""
        digits = [(start + i * step) % 10 for i in range(self.prompt_len + self.answer_len)]
        shown, rest = digits[: self.prompt_len], digits[self.prompt_len :]
        return {
            "prompt": " ".join(map(str, shown)) + " =",
            "answer": " ".join(map(str, rest)),
        }

    def items(self, n: int, *, seed: int = 0) -> list[dict[str, Any]]:
        """``n`` prompts (with their ``answer``), numbered by ``id``, drawn with ``seed``."""
        rng = random.Random(seed)
        return [{"id": i, **self.item(rng.randrange(10), rng.choice(self.steps))} for i in range(n)]

    @property
    def max_tokens(self) -> int:
        """Tokens a full answer takes: the digits and end-of-sequence."""
        return self.answer_len + 1


def reward(prompt: Mapping[str, Any], response: str) -> float:
    """The toy task's rule reward in [0, 1]: right digits in place, and stopping after them.

    ``prompt`` is the prompt's data item (its ``answer`` is read); ``response`` is the
    generated text. Each answer digit in its place earns one share, and a response with
    exactly as many tokens as the answer earns the last share.
    """
    answer = str(prompt["answer"]).split()
    got = list("".join(response.split()))  # one character per token, spaces or not
    right = sum(1 for a, g in zip(answer, got, strict=False) if a == g)
    return (right + (len(got) == len(answer))) / (len(answer) + 1)


def build_digit_model(
    path: str | Path,
    *,
    task: DigitTask | None = None,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 128,
    seed: int = 0,
) -> Path:
    """Write a random tiny Qwen2 model and its word-level digit tokenizer to ``path``.

    ``head_dim`` is ``hidden_size / num_heads`` (keep it ≥ 32 for vLLM's CPU attention).
    Loads with ``AutoModelForCausalLM``/``AutoTokenizer`` without network; serves in vLLM.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    task = task or DigitTask()
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(_VOCAB)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Padding is end-of-sequence, and "<unk>" is an ordinary token: no token the policy
    # can emit vanishes from the decoded text (a reward hack the rule reward would miss).
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS)
    fast.save_pretrained(str(out))
    config = Qwen2Config(
        vocab_size=len(_VOCAB),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=1,
        max_position_embeddings=64,
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = vocab[EOS]
    model.generation_config.pad_token_id = vocab[EOS]
    model.generation_config.do_sample = False
    model.save_pretrained(str(out))
    (out / "tideflow_digit_task.json").write_text(
        json.dumps({"prompt_len": task.prompt_len, "answer_len": task.answer_len}) + "\n"
    )
    return out


def warm_up(
    path: str | Path,
    *,
    task: DigitTask | None = None,
    steps: int = 60,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    num_threads: int | None = None,
) -> float:
    """Supervised warm-up in place: ``steps`` AdamW steps of next-token loss on answers.

    Teaches the format (digits, then end-of-sequence) and part of the rule, so that RL
    starts from a policy whose samples sometimes earn reward. Returns the last loss.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    task = task or DigitTask()
    if num_threads:
        torch.set_num_threads(num_threads)
    tokenizer: Any = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = random.Random(seed)
    loss_value = float("nan")
    for _ in range(steps):
        items = [
            task.item(generator.randrange(10), generator.choice(task.steps))
            for _ in range(batch_size)
        ]
        prompt_ids = [tokenizer(i["prompt"])["input_ids"] for i in items]
        answer_ids = [tokenizer(i["answer"])["input_ids"] + [tokenizer.eos_token_id] for i in items]
        ids = torch.tensor([p + a for p, a in zip(prompt_ids, answer_ids, strict=True)])
        labels = ids.clone()
        labels[:, : len(prompt_ids[0])] = -100
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
    model.save_pretrained(str(path))
    _log().info("toy_warm_up_done", steps=steps, loss=round(loss_value, 4))
    return loss_value
