"""Build fastinit and its compiled kernels (``fastinit._C``: the CPU kernel, plus the CUDA one where possible).

Environment switches:

- ``FASTINIT_NO_EXT=1``: build no extension at all (pure-Python install; the reference backend still works).
- ``FASTINIT_CUDA=0`` / ``FASTINIT_CUDA=1``: force the CUDA kernel off / on. By default it is built only
  when the installed torch is a CUDA build (``torch.version.cuda``) and a CUDA toolkit is found
  (``CUDA_HOME``). No GPU is needed or probed at build time.

torch itself is not an install requirement: it is pinned by the install step (README / CI), and this
build uses the torch already installed, so install with ``pip install --no-build-isolation -e .``.
"""

from __future__ import annotations

import os
import sys

from setuptools import find_packages, setup

# Every float32 step of the stream must round on its own: never contract a*b+c into an FMA.
CXX_FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math"]
# at::parallel_for is an inline OpenMP template: without -fopenmp it silently runs on one thread. The
# extension then shares the libgomp torch has already loaded (same soname), so there is one runtime.
OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []
# nvcc: -fmad=false, never --use_fast_math; the C++ standard is left to torch (C++20 from torch 2.13, C++17
# before: csrc/ is valid in both).
NVCC_FLAGS = ["-O3", "-fmad=false", "-Xcompiler", "-ffp-contract=off"]


def _want_cuda(torch_cuda: str | None, cuda_home: str | None) -> bool:
    forced = os.environ.get("FASTINIT_CUDA")
    if forced is not None:
        return forced.strip() not in ("", "0", "false", "False")
    return torch_cuda is not None and cuda_home is not None


def _extensions() -> tuple[list, dict]:
    """The ``fastinit._C`` extension and the build_ext command, or nothing with FASTINIT_NO_EXT=1."""
    if os.environ.get("FASTINIT_NO_EXT", "0") not in ("", "0"):
        return [], {}
    import torch
    from torch.utils import cpp_extension

    sources = ["csrc/ops.cpp", "csrc/fill_cpu.cpp", "csrc/fill_cpu_avx512.cpp", "csrc/fill_cuda_emulated.cpp"]
    if _want_cuda(torch.version.cuda, cpp_extension.CUDA_HOME):
        ext = cpp_extension.CUDAExtension(
            "fastinit._C",
            sources + ["csrc/fill_cuda.cu"],
            extra_compile_args={"cxx": CXX_FLAGS + OPENMP, "nvcc": NVCC_FLAGS},
            extra_link_args=OPENMP,
        )
    else:
        ext = cpp_extension.CppExtension(
            "fastinit._C", sources, extra_compile_args={"cxx": CXX_FLAGS + OPENMP}, extra_link_args=OPENMP
        )
    return [ext], {"build_ext": cpp_extension.BuildExtension}


ext_modules, cmdclass = _extensions()

setup(
    name="fastinit",
    version="0.1.0",
    description="Fused, reproducible parameter initialization for PyTorch models",
    packages=find_packages(include=["fastinit", "fastinit.*"]),
    python_requires=">=3.10",
    install_requires=["numpy"],
    extras_require={
        "test": ["scipy>=1.11", "pytest>=8", "pytest-benchmark>=4", "ruff>=0.6"],
        "hf": ["transformers==5.23.0"],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
