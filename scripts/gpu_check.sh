#!/usr/bin/env bash
# Everything that needs an NVIDIA GPU, in one command, on a machine that already has a CUDA build of torch,
# Triton, nvcc, numpy, scipy and pytest (it installs nothing and needs no network):
#
#   bash scripts/gpu_check.sh [build|test|bench|all]      (default: all)
#
#   build  compile fastinit._C with the CUDA kernel in place (TORCH_CUDA_ARCH_LIST, default: this GPU's)
#   test   every test, the CUDA ones included (bitwise vs reference, one launch per group, > 2^31 elements)
#   bench  bench/bench_gpu.py (kernels: triton, cuda, torch.nn.init loop, fill_, copy bandwidth) and
#          python -m fastinit bench --device cuda (fastinit.apply end to end on LLaMA-7B bf16, GPT-2-XL fp32)
#
# Results and logs go to $RESULTS (default bench/results). Exits non-zero if any step fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${RESULTS:-bench/results}
MODE=${1:-all}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
status=0
step() { echo; echo "== $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__)"
"$PY" -c "import triton; print('triton', triton.__version__)" || true

if [ "$MODE" = build ] || [ "$MODE" = all ]; then
  step "build fastinit._C with the CUDA kernel"
  if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    TORCH_CUDA_ARCH_LIST=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
    export TORCH_CUDA_ARCH_LIST
  fi
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  # torch guesses CUDA_HOME from nvcc's path; an nvcc linked into /usr/local/bin makes that /usr/local,
  # where no libcudart lies, and the link fails. Prefer the toolkit's own folder when there is one.
  if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda/lib64 ]; then export CUDA_HOME=/usr/local/cuda; fi
  FASTINIT_CUDA=1 "$PY" setup.py -q build_ext --inplace 2>&1 | tee "$RESULTS/gpu_build.log" | tail -n 20 \
    || status=1
  "$PY" -m fastinit backends || status=1
fi

if [ "$MODE" = test ] || [ "$MODE" = all ]; then
  step "tests"
  "$PY" -m pytest tests -q -p no:cacheprovider -rs 2>&1 | tee "$RESULTS/gpu_tests.log" | tail -n 40
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

if [ "$MODE" = bench ] || [ "$MODE" = all ]; then
  step "kernel benchmark (bench/bench_gpu.py)"
  "$PY" bench/bench_gpu.py --out "$RESULTS" || status=1
  for spec in "llama-7b bfloat16" "gpt2-xl float32"; do
    set -- $spec
    step "end to end: python -m fastinit bench --model $1 --dtype $2 --device cuda"
    "$PY" -m fastinit bench --model "$1" --dtype "$2" --device cuda --repeats 10 \
      --json "$RESULTS/gpu_apply_$1_$2.json" --markdown "$RESULTS/gpu_apply_$1_$2.md" || status=1
  done
fi
exit $status
