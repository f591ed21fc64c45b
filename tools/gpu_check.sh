#!/usr/bin/env bash
# GPU checks, in two parts, on a machine with a CUDA GPU.
#
# Part one needs nothing beyond PyTorch + transformers (the lent GPU image: no Ray, no vLLM,
# no tideflow install): tools/gpu_check_part1.py runs the trainer's policy step and the
# transformers engine (sampling with log-probs, greedy decoding, weight loading from chunks)
# on CUDA in bf16 and checks them against the CPU in float32; its results go to
# $TIDEFLOW_GPU_OUT/gpu_check_part1.json (default bench-results/). Always run first.
#
# Part two runs the GPU-only tests of the LLM engines (vLLM, SGLang) and of the RL trainer
# (vLLM rollout, CUDA trainer): it needs the uv workspace, Ray and the engines' extras.
# Each test builds its own tiny random model (no download); the whole run takes a few
# minutes, well under 10. Tests of an engine that is not installed are skipped, and say so.
#
#   tools/gpu_check.sh                       # part one, then part two
#   tools/gpu_check.sh --part one            # part one only (any machine with torch + CUDA)
#   tools/gpu_check.sh --part two            # part two only
#   tools/gpu_check.sh --part one --device cpu   # part one with the CPU in CUDA's place (no GPU)
#   TIDEFLOW_GPU_SYNC=0 tools/gpu_check.sh   # part two does not touch the environment
#
# Part two's two extras pin different CUDA builds of torch, so they are resolved apart in
# the lock and installed one after the other. Syncs are --inexact (the dev tools stay) and
# the tests run with --no-sync, so that `uv run` does not put the default environment back.
set -euo pipefail
cd "$(dirname "$0")/.."

part=all
device=cuda
while [[ $# -gt 0 ]]; do
    case "$1" in
        --part) part=${2:-}; shift; [[ $# -gt 0 ]] && shift ;;
        --part=*) part=${1#--part=}; shift ;;
        --device) device=${2:-}; shift; [[ $# -gt 0 ]] && shift ;;
        --device=*) device=${1#--device=}; shift ;;
        -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
        *)
            echo "gpu_check: unknown argument '$1' (expected --part one|two|all, --device DEVICE)" >&2
            exit 2
            ;;
    esac
done
case "$part" in
    one | two | all) ;;
    *) echo "gpu_check: --part must be one, two or all; got '$part'" >&2; exit 2 ;;
esac
case "$device" in
    cuda | cuda:[0-9]*) ;;
    cpu)
        # Part one checks the device against the CPU; with the CPU in CUDA's place it runs
        # anywhere. Part two's engines need a GPU.
        if [[ "$part" == "two" ]]; then
            echo "gpu_check: part two needs a CUDA GPU; --device cpu runs part one only" >&2
            exit 2
        fi
        [[ "$part" == "all" ]] && echo "gpu_check: --device cpu: part one only (part two needs a GPU)" >&2
        part=one
        ;;
    *) echo "gpu_check: --device must be cuda, cuda:N or cpu; got '$device'" >&2; exit 2 ;;
esac

if [[ "$device" != "cpu" ]]; then
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
        echo "gpu_check: no NVIDIA GPU here; nothing to check (--device cpu runs part one on the CPU)" >&2
        exit 0
    fi
    nvidia-smi -L
fi
started=$SECONDS
status=0

if [[ "$part" != "two" ]]; then
    # The workspace's Python when there is one, else the image's (torch + transformers).
    python=${TIDEFLOW_PYTHON:-python3}
    [[ -z "${TIDEFLOW_PYTHON:-}" && -x .venv/bin/python ]] && python=.venv/bin/python
    out=${TIDEFLOW_GPU_OUT:-bench-results}
    echo "gpu_check: part one (torch + transformers only) with $python" >&2
    timeout 300 "$python" tools/gpu_check_part1.py --device "$device" \
        --out "$out/gpu_check_part1.json" || status=$?
    [[ "$part" == "one" ]] && exit "$status"
fi

echo "gpu_check: part two (Ray, vLLM, SGLang)" >&2
export RAY_ENABLE_UV_RUN_RUNTIME_ENV=0 RAY_enable_worker_prestart=0

sync_extra() {  # sync_extra EXTRA: install one GPU extra on top of the dev environment
    [[ "${TIDEFLOW_GPU_SYNC:-1}" == "1" ]] || return 0
    echo "gpu_check: installing the $1 extra" >&2
    uv sync --locked --inexact --all-packages --extra "$1" \
        || echo "gpu_check: the $1 extra is not installable here; its tests will skip" >&2
}

run_tests() {  # run_tests SECONDS PATHS...: the gpu-marked tests of PATHS
    local limit=$1
    shift
    timeout "$limit" uv run --no-sync pytest "$@" -m gpu -q -rs -p no:cacheprovider || status=$?
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
exit "$status"
