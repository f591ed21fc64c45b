#!/usr/bin/env bash
# Runs the GPU-only tests of the LLM engines (vLLM, SGLang) and of the RL trainer (vLLM
# rollout, CUDA trainer) on a machine with a CUDA GPU.
# Each test builds its own tiny random model (no download); the whole run takes a few
# minutes, well under 10. Tests of an engine that is not installed are skipped, and say so.
#
#   tools/gpu_check.sh              # syncs the vllm extra, runs its tests, then the sglang extra
#   TIDEFLOW_GPU_SYNC=0 tools/gpu_check.sh   # do not touch the environment (one pass)
#
# The two extras pin different CUDA builds of torch, so they are resolved apart in the lock
# and installed one after the other. Syncs are --inexact (the dev tools stay) and the tests
# run with --no-sync, so that `uv run` does not put the default environment back first.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here; nothing to check" >&2
    exit 0
fi
nvidia-smi -L
export RAY_ENABLE_UV_RUN_RUNTIME_ENV=0 RAY_enable_worker_prestart=0
started=$SECONDS

sync_extra() {  # sync_extra EXTRA: install one GPU extra on top of the dev environment
    [[ "${TIDEFLOW_GPU_SYNC:-1}" == "1" ]] || return 0
    echo "gpu_check: installing the $1 extra" >&2
    uv sync --locked --inexact --all-packages --extra "$1" \
        || echo "gpu_check: the $1 extra is not installable here; its tests will skip" >&2
}

run_tests() {  # run_tests SECONDS PATHS...: the gpu-marked tests of PATHS
    local limit=$1
    shift
    timeout "$limit" uv run --no-sync pytest "$@" -m gpu -q -rs -p no:cacheprovider
}

gpu_tests=(packages/streaming/tests/test_llm_gpu.py packages/rl/tests/test_gpu.py)
if [[ "${TIDEFLOW_GPU_SYNC:-1}" != "1" ]]; then
    run_tests 570 "${gpu_tests[@]}"  # whatever engines this environment has
else
    sync_extra vllm
    run_tests 420 "${gpu_tests[@]}" -k "not sglang"
    sync_extra sglang
    run_tests 240 packages/streaming/tests/test_llm_gpu.py -k sglang
fi
echo "gpu_check: done in $((SECONDS - started)) s" >&2
