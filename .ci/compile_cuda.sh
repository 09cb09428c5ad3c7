#!/usr/bin/env bash
# Compile-only check of the CUDA kernel (csrc/fill_cuda.cu) where no GPU, and maybe no CUDA build of
# torch, is available. Exits non-zero if nvcc reports an error.
#
# It compiles with the flags setup.py's CUDAExtension uses (the -D__CUDA_NO_HALF* set torch adds,
# --expt-relaxed-constexpr) plus ours: -fmad=false (the stream must never be contracted into FMAs;
# never --use_fast_math), -std=c++20, -arch=sm_90, against torch's include dirs.
#
# A CPU-only torch wheel ships the c10/cuda headers but not the generated
# c10/cuda/impl/cuda_cmake_macros.h; -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE skips that include (it
# only sets C10_CUDA_BUILD_SHARED_LIBS, which matters for Windows DLL exports). Nothing is linked.
#
# Then tools/check_gpu_code.py reads what was compiled: the kept PTX must hold round-to-nearest float
# ops only (no FMA, FTZ, approximations: the bitwise contract) and ptxas -v must report no stack frame
# and no spills for any kernel.
#
# Env: CUDA_HOME (default /usr/local/cuda); ARCH (default sm_90); STD (default c++20); OUT_OBJ (default a temp file).
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
NVCC="${CUDA_HOME}/bin/nvcc"
if [ ! -x "$NVCC" ]; then
  echo "compile_cuda.sh: no nvcc at $NVCC (set CUDA_HOME)" >&2
  exit 2
fi
ARCH="${ARCH:-sm_90}"
STD="${STD:-c++20}"  # what torch 2.13 builds with (2.11 uses c++17, which compiles csrc/ too); setup.py lets torch pick
OUT_OBJ="${OUT_OBJ:-$(mktemp /tmp/fastinit_fill_cuda.XXXXXX.o)}"

mapfile -t INCLUDES < <("${PYTHON:-python3}" - <<'PY'
import sysconfig
from torch.utils import cpp_extension
for p in cpp_extension.include_paths():
    print(p)
print(sysconfig.get_paths()["include"])
PY
)
INC_FLAGS=()
for p in "${INCLUDES[@]}"; do INC_FLAGS+=("-I$p"); done
ABI=$("${PYTHON:-python3}" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")

KEEP=$(mktemp -d /tmp/fastinit_nvcc.XXXXXX)
set -x
"$NVCC" -c csrc/fill_cuda.cu -o "$OUT_OBJ" --keep --keep-dir "$KEEP" -Xptxas -v \
  -arch="$ARCH" -std="$STD" -O3 -fmad=false \
  -Xcompiler -fPIC -Xcompiler -ffp-contract=off \
  -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__ \
  -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr \
  -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE -DTORCH_EXTENSION_NAME=_C -DTORCH_API_INCLUDE_EXTENSION_H \
  -D_GLIBCXX_USE_CXX11_ABI="$ABI" \
  -Icsrc "${INC_FLAGS[@]}" 2>&1 | tee "$KEEP/nvcc.log"
set +x
# What the kernels compiled to: no contractible or approximate float op in the PTX, no spills (ptxas -v).
"${PYTHON:-python3}" tools/check_gpu_code.py --ptx "$KEEP"/*.ptx --ptxas-log "$KEEP/nvcc.log"
echo "compile_cuda.sh: OK ($OUT_OBJ)"
