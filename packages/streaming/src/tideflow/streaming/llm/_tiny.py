"""A tiny random causal LM with a trained tokenizer, built at test time (no weights ship).

Kept apart from :mod:`tideflow.streaming.llm.testing` so that the model builder can be used
by benchmarks and the RL trainer without the HTTP server, and vice versa.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

from tideflow.streaming.errors import ConfigError

__all__ = ["CHAT_TEMPLATE", "build_tiny_model", "sample_texts"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""A ChatML template (Qwen's layout) that rejects unknown roles, so template errors are real."""

_VOCABULARY = (
    "river stream batch token model actor stage pool queue shard frame video text search "
    "engine ray data fast slow green blue red light dark cloud rain wind tide flow sea "
    "the a of to and in is it on for with as at by from up down over under after before"
)
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def sample_texts(n: int, *, seed: int = 0, min_words: int = 3, max_words: int = 12) -> list[str]:
    """``n`` deterministic sentences over a small vocabulary (tokenizer corpus, test prompts)."""
    rng = random.Random(seed)
    words = _VOCABULARY.split()
    return [
        " ".join(rng.choice(words) for _ in range(rng.randint(min_words, max_words)))
        for _ in range(n)
    ]


def build_tiny_model(
    path: str | Path,
    *,
    arch: Literal["qwen2", "llama"] = "qwen2",
    vocab_size: int = 384,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    intermediate_size: int = 128,
    max_position_embeddings: int = 256,
    seed: int = 0,
) -> Path:
    """Write a random-weight ``arch`` model, its BPE tokenizer and a chat template to ``path``.

    The defaults give ~100 K parameters and ``head_dim`` 32 (vLLM's CPU attention needs
    ≥ 32). The tokenizer is a byte-level BPE trained with ``tokenizers`` on generated text,
    so any string round-trips. Returns ``path``; loads with ``AutoModelForCausalLM`` and
    ``AutoTokenizer`` without network, and serves in vLLM/SGLang.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        AutoModelForCausalLM,
        LlamaConfig,
        PreTrainedTokenizerFast,
        Qwen2Config,
    )

    if hidden_size % num_heads or (hidden_size // num_heads) < 32:
        message = (
            f"build_tiny_model: hidden_size / num_heads must be an integer >= 32 (vLLM's CPU "
            f"attention); got {hidden_size} / {num_heads}"
        )
        raise ConfigError(message)
    if arch not in ("qwen2", "llama"):
        raise ConfigError(f"build_tiny_model: arch must be 'qwen2' or 'llama'; got {arch!r}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sample_texts(2000, seed=seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))

    eos = fast.convert_tokens_to_ids("<|im_end|>")
    pad = fast.convert_tokens_to_ids("<|endoftext|>")
    common: dict[str, Any] = {
        "vocab_size": len(fast),
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "max_position_embeddings": max_position_embeddings,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "bos_token_id": None,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    config = Qwen2Config(**common) if arch == "qwen2" else LlamaConfig(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # Random init at std 0.02 makes near-uniform logits; a wider spread makes greedy
    # decoding decisive (no near-ties), so batched and unbatched runs agree token for token.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, 0.3)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.generation_config.do_sample = False
    model.save_pretrained(str(out))
    (out / "tideflow_tiny.json").write_text(json.dumps({"arch": arch, "seed": seed}) + "\n")
    return out
