#!/usr/bin/env bash
# Installs what fastinit needs on a fresh machine, then builds its C++ extension in place.
#   torch 2.13.0 (CPU build) only where torch is absent; never upgrades an existing torch
#   triton (its CPU interpreter runs the Triton kernel's tests here), test and bench dependencies,
#   matplotlib (optional: histograms of explain/audit --plot)
#   the extension: pip install --no-build-isolation -e .   (FASTINIT_NO_EXT=1 skips the C++ build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  pip_install "torch==2.13.0"
fi
echo "setup: torch $("$PY" -c 'import torch; print(torch.__version__)')"
if ! "$PY" -c "import triton" 2>/dev/null; then
  echo "setup: installing triton"
  pip_install "triton==3.9.0" || echo "setup: triton could not be installed; its tests will be skipped"
fi
# Test and benchmark dependencies (none of them depends on torch, so nothing can pull a new one).
pip_install "numpy>=1.24" "scipy>=1.11" "pytest>=8" "pytest-benchmark>=4" "ruff>=0.6" "setuptools>=64" wheel
# Optional: Hugging Face models for the "hf" policy tests (transformers does not require torch, so the pin stays).
pip_install "transformers==5.23.0" || echo "setup: transformers could not be installed; the HF tests will be skipped"
# Optional: matplotlib for `python -m fastinit explain|audit --plot` (it does not depend on torch either).
pip_install "matplotlib>=3.7" || echo "setup: matplotlib could not be installed; --plot and its test will be skipped"
so=$(ls fastinit/_C*.so 2>/dev/null | head -n 1 || true)
# Up to date = the .so is newer than its sources, and the installed fastinit (imported from outside
# the checkout, so the working directory cannot stand in for it) is this checkout's, with its _C.
here=$(pwd -P)
installed_here() {
  (cd / && "$PY" -c "import os, sys, fastinit._C as c; sys.exit(os.path.dirname(os.path.realpath(c.__file__)) != sys.argv[1])" \
    "$here/fastinit") 2>/dev/null
}
if [ -n "$so" ] && [ -z "$(find csrc setup.py -newer "$so" 2>/dev/null)" ] && installed_here; then
  echo "setup: fastinit and its extension are installed and up to date"
else
  echo "setup: building fastinit (pip install --no-build-isolation -e .)"
  pip_install --no-build-isolation --no-deps -e .
fi
"$PY" -m fastinit backends
