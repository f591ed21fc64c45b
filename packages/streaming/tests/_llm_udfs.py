"""Row functions of the LLM tests (importable by Ray workers) and the direct reference."""

from __future__ import annotations

from typing import Any


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
