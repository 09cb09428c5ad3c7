#!/usr/bin/env bash
# The test command: set up (scripts/setup.sh), lint, compile the CUDA sources, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
echo "== ruff"
"$PY" -m ruff check .
echo "== CUDA sources compile (nvcc, compile only)"
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  bash .ci/compile_cuda.sh
else
  echo "nvcc not found: CUDA compile check skipped"
fi
echo "== pytest"
"$PY" -m pytest tests -q -p no:cacheprovider -ra "$@"
