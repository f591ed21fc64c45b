"""The GPU path: vLLM rollout workers and a CUDA trainer (``tools/gpu_check.sh`` runs it)."""

from __future__ import annotations

import pytest

from tideflow.rl import DataConfig, ModelConfig, RLConfig, RolloutConfig, TrainerConfig, train
from tideflow.rl.toy import DigitTask

pytestmark = [pytest.mark.gpu, pytest.mark.ray, pytest.mark.slow]


def _needs_vllm_and_cuda() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    pytest.importorskip("vllm", reason="vllm is not installed (see tools/gpu_check.sh)")


def test_vllm_rollout_and_cuda_trainer_train_with_two_batch_overlap(
    ray_session, digit_model
) -> None:
    _needs_vllm_and_cuda()
    task = DigitTask()
    config = RLConfig(
        model=ModelConfig(path=digit_model),
        data=DataConfig(prompts_per_step=16),
        rollout=RolloutConfig(
            engine="vllm",
            samples_per_prompt=8,
            max_tokens=task.max_tokens,
            num_gpus=0.5,
            engine_kwargs={
                "dtype": "float32",
                "gpu_memory_utilization": 0.3,
                "enforce_eager": True,
            },
        ),
        trainer=TrainerConfig(lr=1e-3, device="cuda", num_gpus=0.5),
        buffer_size=2,
        total_steps=8,
    )
    result = train(config)
    assert [s.step for s in result.steps] == list(range(8))
    assert max(s.max_lag for s in result.steps) <= 1
    # Step 0 is trained on samples of the very weights the trainer holds: vLLM's behaviour
    # log-probs and the trainer's agree up to kernel differences.
    assert abs(result.steps[0].behaviour_kl) < 1e-2
    assert all(s.samples == 16 * 8 for s in result.steps)
    assert all(s.weight_sync_s > 0 for s in result.steps[1:])
