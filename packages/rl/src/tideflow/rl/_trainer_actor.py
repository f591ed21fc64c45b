"""The trainer role as a Ray actor: steps, weight publishing, checkpoints."""

from __future__ import annotations

import functools
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tideflow.core.checkpoint import CheckpointStore
from tideflow.core.observability import get_logger
from tideflow.rl._data import Batch, Sample
from tideflow.rl._metrics import token_staleness
from tideflow.rl._weights import chunk_weights, tensor_bytes, to_wire
from tideflow.rl.config import RLConfig

__all__ = ["TrainerWorker"]

# Bound when used: a logger bound at import would miss the CLI's logging set-up.
_log = functools.partial(get_logger, "tideflow.rl.trainer")


class TrainerWorker:
    """Holds a :class:`~tideflow.rl._policy.PolicyTrainer`; built in :meth:`start`."""

    def __init__(self, config: RLConfig) -> None:
        self.config = config
        self._core: Any = None

    def start(self) -> int:
        """Load the policy (and reference); returns the policy version."""
        from tideflow.rl._policy import PolicyTrainer

        cfg = self.config
        self._core = PolicyTrainer(
            model=cfg.model,
            algorithm=cfg.algorithm,
            trainer=cfg.trainer,
            temperature=cfg.rollout.temperature,
            samples_per_prompt=cfg.rollout.samples_per_prompt,
            seed=cfg.seed,
        )
        return int(self._core.version)

    def train(self, batch: Batch, publish_chunk_bytes: int | None = None) -> dict[str, Any]:
        """One step on ``batch``; metrics with the wall-clock interval of the step and the
        per-token lag of its samples (``tokens``). With ``publish_chunk_bytes``, the new
        weights are published in the same call (``published``: see :meth:`publish`), which
        spares the driver a round trip between two steps."""
        started = time.time()
        version = int(self._core.version)
        metrics = self._core.train_step(batch.samples)
        metrics["interval"] = (started, time.time())
        metrics["tokens"] = token_staleness(batch.samples, version)
        rewards = [float(s.reward or 0.0) for s in batch.samples]
        metrics["batch"] = {
            "reward_mean": statistics.fmean(rewards),
            "reward_std": statistics.pstdev(rewards),
            "staleness": dict(Counter(version - s.version for s in batch.samples)),
            "samples": len(batch.samples),
            "response_len_mean": statistics.fmean(len(s.response_token_ids) for s in batch.samples),
            "generate_s": batch.generate_s,
            "reward_s": batch.reward_s,
            "intervals": list(batch.intervals),
        }
        if publish_chunk_bytes is not None:
            metrics["published"] = self.publish(publish_chunk_bytes)
        return metrics

    def publish(self, chunk_bytes: int) -> dict[str, Any]:
        """Put the current weights in the object store in chunks of ≤ ``chunk_bytes``.

        Returns ``{"version", "chunks": [ObjectRef, ...], "publish_s", "bytes",
        "interval"}``; the refs travel inside a list, so Ray hands them on unresolved.
        """
        import ray

        started_wall, started = time.time(), time.perf_counter()
        chunks = chunk_weights(self._core.named_weights(), chunk_bytes)
        refs = [ray.put(to_wire(chunk)) for chunk in chunks]
        nbytes = sum(tensor_bytes(t) for chunk in chunks for _, t in chunk)
        return {
            "version": int(self._core.version),
            "chunks": refs,
            "publish_s": time.perf_counter() - started,
            "bytes": nbytes,
            "interval": (started_wall, time.time()),
        }

    def checkpoint(
        self,
        uri: str,
        retain: int,
        step: int,
        buffer: Sequence[Mapping[str, Any]],
        metadata: Mapping[str, Any],
    ) -> float:
        """Save a checkpoint with id ``step`` (steps trained so far); returns its seconds."""
        started = time.perf_counter()
        states: dict[str, Any] = dict(self._core.state())
        states["buffer"] = {"batches": list(buffer)}
        CheckpointStore(uri, retain=retain).save(step, states, metadata=dict(metadata))
        return time.perf_counter() - started

    def restore(self, uri: str) -> dict[str, Any] | None:
        """Load the latest checkpoint under ``uri`` (if any) into the policy and optimizer;
        returns its step, metadata and buffer contents, or ``None`` when there is none."""
        store = CheckpointStore(uri)
        store.cleanup_partial(all=True)
        if store.latest() is None:
            return None
        checkpoint = store.load()
        self._core.load_state(checkpoint.states)
        return {
            "step": int(checkpoint.checkpoint_id),
            "metadata": dict(checkpoint.metadata),
            "buffer": list(checkpoint.states["buffer"]["batches"]),
        }

    def trained(self) -> list[list[int]]:
        """The prompt ids of every step this policy was trained on, in order."""
        return [list(ids) for ids in self._core.trained]

    def version(self) -> int:
        return int(self._core.version)

    def weights(self) -> dict[str, Any]:
        """The policy's parameters (tests compare them with the rollout side)."""
        return {name: t.clone() for name, t in self._core.named_weights()}

    def greedy(self, prompt_token_ids: Sequence[int], max_tokens: int) -> list[int]:
        """The policy's own greedy continuation of a prompt (tests)."""
        import torch

        model = self._core.model
        ids = torch.tensor([list(prompt_token_ids)], device=self._core.device)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self._core.pad_token_id,
            )
        return [int(t) for t in out[0, ids.shape[1] :].tolist()]

    def score_batch(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Training-side log-probs of samples (tests compare them with behaviour log-probs)."""
        import torch

        from tideflow.rl._policy import batch_tensors

        data = batch_tensors(
            [Sample.from_dict(s) for s in samples],
            pad_token_id=self._core.pad_token_id,
            temperature=self._core.temperature,
        )
        with torch.no_grad():
            log_probs = self._core.log_probs(self._core.model, data)[0].cpu()
        return {"log_probs": log_probs, "mask": data.batch["response_mask"]}
