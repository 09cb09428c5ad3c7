#!/usr/bin/env bash
# The test command: set up (scripts/setup.sh), lint, compile the CUDA sources, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
echo "== ruff"
"$PY" -m ruff check .
echo "== CUDA sources compile (nvcc, compile only)"
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null 2>&1; then
  CUDA_HOME=$(dirname "$(dirname "$(command -v nvcc)")")
fi
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
if [ -x "$CUDA_HOME/bin/nvcc" ]; then
  bash .ci/compile_cuda.sh
else
  echo "nvcc not found: CUDA compile check skipped"
fi
echo "== pytest"
"$PY" -m pytest tests -q -p no:cacheprovider -ra "$@"
