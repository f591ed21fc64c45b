"""GPU check, part one: the trainer's policy step and the transformers engine on CUDA in
bf16, checked against the same work on the CPU in float32. Needs only PyTorch and
transformers (the lent GPU image has no Ray, no vLLM, no verl and no tideflow install).

What runs, on a tiny Qwen2 model built here (``tideflow.rl.toy``, no download):

* **policy step** — GRPO advantages, the PPO-clip loss anchored on the behaviour log-probs
  (``off_policy="bypass"``), token-mean aggregation, backward, gradient clipping and one
  AdamW step: the computation of ``tideflow.rl._policy.PolicyTrainer.train_step`` with the
  default ``AlgorithmConfig``, written here in plain torch because verl, which the trainer
  calls, imports Ray at import. ``tools/tests/test_gpu_check_part1.py`` checks on the CPU
  that this step equals the trainer's (same loss, same weights after the step).
* **engine** — ``tideflow.streaming``'s ``TransformersEngine`` (the rollout's variant that
  keeps the end-of-sequence token): sampling with log-probs, greedy generation, and loading
  new weights in chunks (``tideflow.rl.chunk_weights``) between two calls.

Tideflow modules are imported from ``packages/*/src`` without running the package
``__init__`` files that import Ray (``tideflow.streaming`` and ``tideflow.streaming.llm``
import the Ray-backed pipeline; ``tideflow.core`` imports structlog): those packages are
registered as bare packages over their folders first, so only the modules listed in
``_MODULES`` load. Where structlog is missing (the GPU image), a stand-in that drops log
lines is registered in its place (logging is not what is checked).

    python tools/gpu_check_part1.py                  # CUDA bf16 vs CPU float32
    python tools/gpu_check_part1.py --device cpu     # the same checks with CPU for CUDA
    python tools/gpu_check_part1.py --out result.json

Prints one line per check and exits 1 when any check misses its tolerance (``TOLERANCES``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

TOLERANCES: dict[str, float] = {
    # policy step: device bf16 vs CPU float32 on the same batch and the same starting weights
    "step_logprob_max_abs": 0.25,  # per-token log-prob of the responses before the step
    "step_logprob_mean_abs": 0.05,
    "step_loss_abs": 0.02,  # the PPO-clip loss (advantages are normalised: |loss| ≲ 1)
    "step_grad_norm_rel": 0.1,  # gradient norm before clipping, relative
    "step_update_cosine_min": 0.9,  # cosine of the weight change (after − before), device vs CPU
    # engine: device bf16 vs CPU float32
    "engine_logprob_max_abs": 0.25,  # sampled tokens' log-probs vs a float32 forward on the CPU
    "engine_logprob_mean_abs": 0.05,
    "engine_greedy_match_min": 0.9,  # share of greedy continuations equal to the CPU's
    "engine_loaded_weights_max_abs": 0.0,  # loaded parameter vs the source cast to bf16
}


# -- imports without Ray -------------------------------------------------------------------

_BARE_PACKAGES = {
    "tideflow.core": "core",
    "tideflow.streaming": "streaming",
    "tideflow.streaming.llm": "streaming",
    "tideflow.streaming.llm.engines": "streaming",
    "tideflow.rl": "rl",
}
_MODULES = (
    "tideflow.core.errors",
    "tideflow.core.observability",
    "tideflow.streaming.errors",
    "tideflow.streaming.llm._config",
    "tideflow.streaming.llm._engine",
    "tideflow.streaming.llm.engines.transformers",
    "tideflow.rl.errors",
    "tideflow.rl.config",
    "tideflow.rl._weights",
    "tideflow.rl._rollout",
    "tideflow.rl.toy",
)


def _structlog_stand_in() -> types.ModuleType:
    """A module with structlog's ``get_logger`` whose loggers drop every line."""

    class _Logger:
        def bind(self, **_: Any) -> _Logger:
            return self

        def __getattr__(self, _name: str) -> Callable[..., None]:
            return lambda *args, **kwargs: None

    module = types.ModuleType("structlog")
    module.get_logger = lambda *args, **kwargs: _Logger()  # type: ignore[attr-defined]
    return module


def import_tideflow() -> dict[str, types.ModuleType]:
    """The Tideflow modules part one uses, loaded from ``packages/*/src`` without Ray."""
    for package in ("core", "streaming", "rl"):
        src = str(ROOT / "packages" / package / "src")
        if src not in sys.path:
            sys.path.insert(0, src)
    for name, package in _BARE_PACKAGES.items():
        if name in sys.modules:
            continue
        folder = ROOT / "packages" / package / "src" / Path(*name.split("."))
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        module.__package__ = name
        sys.modules[name] = module
    try:
        importlib.import_module("structlog")
    except ImportError:
        sys.modules["structlog"] = _structlog_stand_in()
    return {name: importlib.import_module(name) for name in _MODULES}


# -- the policy step -----------------------------------------------------------------------


def grpo_advantages(rewards: Any, groups: Sequence[str], epsilon: float = 1e-6) -> Any:
    """GRPO's outcome advantages: (reward − group mean) ÷ (group std + ε), per sample."""
    import torch

    out = torch.zeros_like(rewards)
    for group in dict.fromkeys(groups):
        rows = [i for i, g in enumerate(groups) if g == group]
        values = rewards[rows]
        if len(rows) == 1:
            out[rows] = values
        else:
            out[rows] = (values - values.mean()) / (values.std() + epsilon)
    return out


def response_logprobs(model: Any, batch: dict[str, Any], temperature: float) -> Any:
    """Log-probability of each response token under ``model`` (logits ÷ temperature)."""
    import torch

    responses = batch["responses"]
    width = responses.shape[1]
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
    ).logits[:, -width - 1 : -1, :]
    logits = logits.float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, responses.unsqueeze(-1)).squeeze(-1)


def policy_step(
    model: Any,
    optimizer: Any,
    batch: dict[str, Any],
    *,
    temperature: float = 1.0,
    clip_ratio: float = 0.2,
    clip_ratio_c: float = 3.0,
    grad_clip: float | None = 1.0,
) -> dict[str, Any]:
    """One training step on ``batch`` (tensors on the model's device): the loss, backward,
    gradient clipping and one optimizer step. Returns the loss, the gradient norm and the
    log-probs before the step."""
    import torch

    mask = batch["response_mask"]
    advantages = batch["advantages"].unsqueeze(-1) * mask
    log_prob = response_logprobs(model, batch, temperature)
    ratio = torch.exp(torch.clamp(log_prob - batch["behaviour_logprobs"], -20.0, 20.0))
    losses1 = -advantages * ratio
    losses2 = -advantages * torch.clamp(ratio, 1 - clip_ratio, 1 + clip_ratio)
    clipped = torch.maximum(losses1, losses2)
    dual = torch.min(-advantages * clip_ratio_c, clipped)  # dual clip, negative advantages
    losses = torch.where(advantages < 0, dual, clipped)
    loss = (losses * mask).sum() / mask.sum()  # token-mean
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    else:
        norm = torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
        )
    optimizer.step()
    return {
        "loss": float(loss.detach()),
        "grad_norm": float(norm),
        "log_prob": log_prob.detach().float().cpu(),
    }


def batch_tensors(samples: Sequence[dict[str, Any]], pad: int) -> dict[str, Any]:
    """Left-padded prompts, right-padded responses, masks, positions, behaviour log-probs and
    GRPO advantages of ``samples`` (dicts with ``prompt``, ``response``, ``logprobs``,
    ``reward``, ``group``), laid out as the trainer lays out its batches."""
    import torch

    n = len(samples)
    prompt_len = max(len(s["prompt"]) for s in samples)
    response_len = max(1, *(len(s["response"]) for s in samples))
    prompts = torch.full((n, prompt_len), pad, dtype=torch.long)
    prompt_mask = torch.zeros((n, prompt_len), dtype=torch.long)
    responses = torch.full((n, response_len), pad, dtype=torch.long)
    response_mask = torch.zeros((n, response_len), dtype=torch.long)
    behaviour = torch.zeros((n, response_len), dtype=torch.float32)
    for row, s in enumerate(samples):
        p, r = s["prompt"], s["response"]
        prompts[row, prompt_len - len(p) :] = torch.tensor(p)
        prompt_mask[row, prompt_len - len(p) :] = 1
        if r:
            responses[row, : len(r)] = torch.tensor(r)
            response_mask[row, : len(r)] = 1
            behaviour[row, : len(r)] = torch.tensor(s["logprobs"])
    attention_mask = torch.cat([prompt_mask, response_mask], dim=1)
    rewards = torch.tensor([float(s["reward"]) for s in samples])
    return {
        "input_ids": torch.cat([prompts, responses], dim=1),
        "attention_mask": attention_mask,
        "position_ids": torch.clamp(torch.cumsum(attention_mask, dim=1) - 1, min=0),
        "responses": responses,
        "response_mask": response_mask.float(),
        "behaviour_logprobs": behaviour,
        "advantages": grpo_advantages(rewards, [s["group"] for s in samples]),
    }


# -- the checks ----------------------------------------------------------------------------


class Report:
    """Check results: one line printed per check, all kept for the JSON."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def check(self, name: str, value: float, tolerance: float, *, at_least: bool = False) -> None:
        ok = value >= tolerance if at_least else value <= tolerance
        bound = f"{'≥' if at_least else '≤'} {tolerance:g}"
        self.checks.append({"check": name, "value": value, "bound": bound, "ok": ok})
        print(f"gpu_check part one: {'ok  ' if ok else 'FAIL'} {name} = {value:.6g} ({bound})")

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


def _engine(mods: dict[str, types.ModuleType], path: Path, device: str, dtype: str) -> Any:
    config_mod = mods["tideflow.streaming.llm._config"]
    engine_cls = mods["tideflow.rl._rollout"].rollout_transformers_engine()
    config = config_mod.TransformersEngineConfig(
        model_source=str(path), device=device, dtype=dtype, max_batch_size=256
    )
    return engine_cls(config)


def _requests(
    mods: dict[str, types.ModuleType], prompts: Sequence[list[int]], **sampling: Any
) -> list[Any]:
    engine_mod = mods["tideflow.streaming.llm._engine"]
    config_mod = mods["tideflow.streaming.llm._config"]
    params = config_mod.SamplingParams(**sampling)
    return [engine_mod.GenerateRequest(prompt_token_ids=list(p), sampling=params) for p in prompts]


def _results(results: Sequence[Any]) -> list[Any]:
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)


async def _greedy(engine: Any, mods: dict[str, types.ModuleType], prompts: Any) -> list[Any]:
    results = await engine.generate(_requests(mods, prompts, max_tokens=4, temperature=0.0))
    return [tuple(r.token_ids) for r in _results(results)]


def _match(a: Sequence[Any], b: Sequence[Any]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _teacher_forced(model: Any, samples: Sequence[dict[str, Any]], pad: int) -> Any:
    import torch

    batch = batch_tensors(samples, pad)
    with torch.no_grad():
        return response_logprobs(model, batch, 1.0), batch["response_mask"]


def _logprob_gaps(a: Any, b: Any, mask: Any) -> tuple[float, float]:
    gap = (a.float() - b.float()).abs() * mask
    return float(gap.max()), float(gap.sum() / mask.sum())


async def check_engine(
    mods: dict[str, types.ModuleType],
    *,
    path: Path,
    device: str,
    new_weights: dict[str, Any],
    prompts: Sequence[list[int]],
    report: Report,
) -> None:
    """Sampling with log-probs, greedy generation and chunked weight loading on ``device``
    in bf16, against the CPU in float32."""
    import torch
    from transformers import AutoModelForCausalLM

    chunk_weights = mods["tideflow.rl._weights"].chunk_weights
    reference = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    on_device = _engine(mods, path, device, "bfloat16")
    on_cpu = _engine(mods, path, "cpu", "float32")
    await on_device.start()
    await on_cpu.start()
    try:
        # sampling with log-probs on the device; the CPU float32 model scores the same tokens
        sampled = _results(
            await on_device.generate(
                _requests(mods, prompts, max_tokens=4, temperature=1.0, seed=7, logprobs=True)
            )
        )
        samples = [
            {
                "prompt": p,
                "response": r.token_ids,
                "logprobs": r.logprobs,
                "reward": 0.0,
                "group": str(i),
            }
            for i, (p, r) in enumerate(zip(prompts, sampled, strict=True))
        ]
        pad = int(on_cpu.tokenizer.pad_token_id)
        cpu_lp, mask = _teacher_forced(reference, samples, pad)
        device_lp = batch_tensors(samples, pad)["behaviour_logprobs"]
        worst, mean = _logprob_gaps(device_lp, cpu_lp, mask)
        report.check("engine.sample_logprob_max_abs", worst, TOLERANCES["engine_logprob_max_abs"])
        report.check("engine.sample_logprob_mean_abs", mean, TOLERANCES["engine_logprob_mean_abs"])
        # greedy decoding, before and after loading new weights in chunks
        match = _match(
            await _greedy(on_device, mods, prompts), await _greedy(on_cpu, mods, prompts)
        )
        report.check(
            "engine.greedy_match", match, TOLERANCES["engine_greedy_match_min"], at_least=True
        )
        named = list(new_weights.items())
        chunks = chunk_weights(named, chunk_bytes=64 << 10)
        for chunk in chunks:
            await on_device.load_weights(chunk)
            await on_cpu.load_weights(chunk)
        loaded = dict(on_device.model.named_parameters())
        worst_load = max(
            float((loaded[name].detach().cpu() - tensor.to(torch.bfloat16)).abs().max())
            for name, tensor in named
        )
        report.check(
            "engine.loaded_weights_max_abs", worst_load, TOLERANCES["engine_loaded_weights_max_abs"]
        )
        report.check("engine.weight_chunks", float(len(chunks)), 2.0, at_least=True)
        match = _match(
            await _greedy(on_device, mods, prompts), await _greedy(on_cpu, mods, prompts)
        )
        report.check(
            "engine.greedy_match_after_load",
            match,
            TOLERANCES["engine_greedy_match_min"],
            at_least=True,
        )
    finally:
        await on_device.shutdown()
        await on_cpu.shutdown()


def check_policy_step(
    path: Path, device: str, samples: Sequence[dict[str, Any]], pad: int, report: Report
) -> dict[str, Any]:
    """One policy step on ``device`` in bf16 and on the CPU in float32, from the same weights
    on the same batch. Returns the CPU model's weights after the step."""
    import torch
    from transformers import AutoModelForCausalLM

    batch = batch_tensors(samples, pad)
    out = {}
    for name, where, dtype in (("cpu", "cpu", torch.float32), ("device", device, torch.bfloat16)):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(where).train()
        before = {k: v.detach().float().cpu().clone() for k, v in model.named_parameters()}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
        result = policy_step(model, optimizer, {k: v.to(where) for k, v in batch.items()})
        after = {k: v.detach().float().cpu().clone() for k, v in model.named_parameters()}
        result["update"] = torch.cat([(after[k] - before[k]).flatten() for k in before])
        result["weights"] = after
        out[name] = result
    cpu, dev = out["cpu"], out["device"]
    mask = batch["response_mask"]
    worst, mean = _logprob_gaps(dev["log_prob"], cpu["log_prob"], mask)
    report.check("step.logprob_max_abs", worst, TOLERANCES["step_logprob_max_abs"])
    report.check("step.logprob_mean_abs", mean, TOLERANCES["step_logprob_mean_abs"])
    report.check("step.loss_abs", abs(dev["loss"] - cpu["loss"]), TOLERANCES["step_loss_abs"])
    rel = abs(dev["grad_norm"] - cpu["grad_norm"]) / max(cpu["grad_norm"], 1e-12)
    report.check("step.grad_norm_rel", rel, TOLERANCES["step_grad_norm_rel"])
    cosine = float(torch.nn.functional.cosine_similarity(dev["update"], cpu["update"], dim=0))
    report.check("step.update_cosine", cosine, TOLERANCES["step_update_cosine_min"], at_least=True)
    finite = all(math.isfinite(float(v.abs().max())) for v in dev["weights"].values())
    report.check("step.weights_finite", float(finite), 1.0, at_least=True)
    weights: dict[str, Any] = cpu["weights"]
    return weights


def run(device: str, out: Path | None) -> int:
    """All of part one on ``device``; 0 when every check is within its tolerance."""
    import torch
    import transformers

    started = time.perf_counter()
    mods = import_tideflow()
    toy = mods["tideflow.rl.toy"]
    transformers.utils.logging.set_verbosity_error()
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check part one: torch sees no CUDA device; use --device cpu", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    report = Report()
    task = toy.DigitTask()
    items = [item for item in task.items(8, seed=3) for _ in range(4)]  # groups of 4
    with tempfile.TemporaryDirectory(prefix="tideflow-gpu-check-") as tmp:
        path = toy.build_digit_model(
            Path(tmp) / "model", hidden_size=128, num_heads=4, intermediate_size=256, num_layers=2
        )
        toy.warm_up(path, steps=20, batch_size=32)  # confident greedy picks
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        prompts = [list(tokenizer(item["prompt"])["input_ids"]) for item in items]
        pad = int(tokenizer.pad_token_id)
        # the step's batch: sampled on the CPU in float32 (behaviour log-probs), then trained on
        # from the same weights on both devices; its new weights then go to the engines
        samples = asyncio.run(_cpu_samples(mods, path, prompts, items))
        new_weights = check_policy_step(path, device, samples, pad, report)
        asyncio.run(
            check_engine(
                mods,
                path=path,
                device=device,
                new_weights=new_weights,
                prompts=prompts,
                report=report,
            )
        )
    seconds = time.perf_counter() - started
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    summary = {
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "ok": report.ok,
        "seconds": round(seconds, 2),
        "tolerances": TOLERANCES,
        "checks": report.checks,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    verdict = "all checks within tolerance" if report.ok else "some checks FAILED"
    print(
        f"gpu_check part one on {name} ({device}, bf16 vs cpu float32): {verdict}, {seconds:.1f} s"
    )
    return 0 if report.ok else 1


async def _cpu_samples(
    mods: dict[str, types.ModuleType],
    path: Path,
    prompts: Sequence[list[int]],
    items: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Samples of ``prompts`` (groups of 4) from the CPU engine in float32, with behaviour
    log-probs and the toy reward: the policy step's batch."""
    toy = mods["tideflow.rl.toy"]
    engine = _engine(mods, path, "cpu", "float32")
    await engine.start()
    try:
        results = _results(
            await engine.generate(
                _requests(mods, prompts, max_tokens=4, temperature=1.0, seed=11, logprobs=True)
            )
        )
        samples = []
        for i, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
            text = engine.tokenizer.decode(result.token_ids, skip_special_tokens=True)
            samples.append(
                {
                    "prompt": list(prompt),
                    "response": list(result.token_ids),
                    "logprobs": list(result.logprobs),
                    "reward": toy.reward(items[i], text),
                    "group": str(i // 4),
                }
            )
        return samples
    finally:
        await engine.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the device checked (cuda, cuda:1, cpu)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    return run(args.device, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
