#!/usr/bin/env bash
# Runs the GPU-only tests of the LLM engines (vLLM, SGLang) and of the RL trainer (vLLM
# rollout, CUDA trainer) on a machine with a CUDA GPU.
# Each test builds its own tiny random model (no download); the whole run takes a few
# minutes, well under 10. Tests of an engine that is not installed are skipped, and say so.
#
#   tools/gpu_check.sh              # the vLLM extra must be installable or installed
#   TIDEFLOW_GPU_SYNC=0 tools/gpu_check.sh   # do not touch the environment
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here; nothing to check" >&2
    exit 0
fi
nvidia-smi -L

if [[ "${TIDEFLOW_GPU_SYNC:-1}" == "1" ]] && ! uv run python -c "import vllm" >/dev/null 2>&1; then
    echo "gpu_check: installing the vllm extra (uv sync --extra vllm)" >&2
    uv sync --package tideflow-streaming --extra vllm || echo "gpu_check: vllm not installable here; its tests will skip" >&2
fi

export RAY_ENABLE_UV_RUN_RUNTIME_ENV=0 RAY_enable_worker_prestart=0
timeout 570 uv run pytest packages/streaming/tests/test_llm_gpu.py packages/rl/tests/test_gpu.py \
    -m gpu -q -rs -p no:cacheprovider "$@"
