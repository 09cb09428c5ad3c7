"""What the Triton kernel compiles to for an H100 (sm_90), checked without a GPU.

Triton compiles to PTX and a cubin (its bundled ptxas) with no device present, so these run on every machine
with Triton: the kernel compiles in every dtype, store variant and autotune configuration; its float arithmetic
is round-to-nearest ops only (no FMA, FTZ or approximation: the bitwise contract); full blocks of aligned
groups are vector stores; no configuration spills or needs more registers than an SM has.
The CUDA C++ kernel gets the same PTX and spill checks from .ci/compile_cuda.sh (nvcc).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import check_gpu_code as C  # noqa: E402

TARGET_ARCH = 90  # H100 / H200


# ---- the checker itself ---------------------------------------------------------------------------------------


def test_ptx_rules_flag_what_breaks_the_contract():
    ok = """
        mul.rn.f32 %f3, %f1, %f2;
        @%p1 add.rn.f32 %f4, %f3, %f1;
        sqrt.rn.f32 %f5, %f4;
        mul.lo.s32 %r1, %r2, %r3;
        mad.lo.s64 %rd1, %rd2, %rd3, %rd4;
        mul.hi.u32 %r4, %r5, -766435501;
        neg.f32 %f6, %f5;
        cvt.rn.f32.f64 %f7, %fd1;
        setp.lt.f32 %p2, %f7, 0f3F800000;
        st.global.v4.b32 [%rd5], {%r1, %r2, %r3, %r4};
    """
    assert C.ptx_float_violations(ok) == []
    bad = {
        "fma.rn.f32 %f1, %f2, %f3, %f4;": "fused",
        "mul.f32 %f1, %f2, %f3;": "no .rn",
        "@!%p3 add.f64 %fd1, %fd2, %fd3;": "no .rn",
        "mul.rn.ftz.f32 %f1, %f2, %f3;": "flushes subnormals",
        "sqrt.approx.f32 %f1, %f2;": "approximates",
        "lg2.approx.ftz.f32 %f1, %f2;": "approximate",
        "ex2.approx.f32 %f1, %f2;": "approximate",
    }
    for line, why in bad.items():
        found = C.ptx_float_violations(f"  {line}\n")
        assert len(found) == 1 and why in found[0], (line, found)


def test_ptxas_spill_parser():
    log = """ptxas info    : Compiling entry function '_ZN8fastinit4fillIfEEvPKl' for 'sm_90'
ptxas info    : Function properties for _ZN8fastinit4fillIfEEvPKl
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function '_ZN8fastinit4fillIdEEvPKl' for 'sm_90'
ptxas info    : Function properties for _ZN8fastinit4fillIdEEvPKl
    24 bytes stack frame, 24 bytes spill stores, 16 bytes spill loads
"""
    found = C.ptxas_spills(log)
    assert len(found) == 1 and "fillIdE" in found[0]
    # A stack frame alone (an array in local memory) counts too.
    assert len(C.ptxas_spills(log.replace("    0 bytes stack frame", "    16 bytes stack frame"))) == 2


def test_resource_rules():
    fine = {"k": {"REG": 125, "STACK": 0, "LOCAL": 0, "SHARED": 1024}}
    assert C.resource_violations(fine, threads=512) == []
    assert "spills" in C.resource_violations({"k": {"REG": 255, "STACK": 696, "LOCAL": 0}}, threads=128)[0]
    assert "registers" in C.resource_violations(fine, threads=1024)[0]


# ---- the Triton kernel, compiled for sm_90 -------------------------------------------------------------------


def _triton_or_skip():
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set in this process: triton.jit gives interpreted functions")
    from fastinit.kernels import triton_fill as TF

    if TF.TRITON_ERROR is not None:
        pytest.skip(TF.TRITON_ERROR)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    return TF, triton, GPUTarget, ASTSource


_COMPILED: dict = {}


def _compile(dtype: torch.dtype, block: int, num_warps: int, aligned: bool, rn: bool = True):
    """The kernel compiled for sm_90 (cached per process; Triton caches on disk too)."""
    key = (dtype, block, num_warps, aligned, rn)
    if key not in _COMPILED:
        TF, triton, GPUTarget, ASTSource = _triton_or_skip()
        sig = {"buf": "*i64", "size_class": "i32", "OUT_DTYPE": "constexpr", "BLOCK": "constexpr",
               "RN": "constexpr", "ALIGNED": "constexpr"}
        src = ASTSource(fn=TF._fill_group_kernel, signature=sig,
                        constexprs={"OUT_DTYPE": TF._TORCH_TO_TL[dtype], "BLOCK": block, "RN": rn,
                                    "ALIGNED": aligned})
        try:
            _COMPILED[key] = triton.compile(src, target=GPUTarget("cuda", TARGET_ARCH, 32),
                                            options={"num_warps": num_warps, "enable_fp_fusion": False})
        except FileNotFoundError as exc:  # a Triton install without its bundled ptxas
            pytest.skip(f"Triton cannot compile for sm_{TARGET_ARCH} here: {exc}")
    return _COMPILED[key]


def _cuobjdump() -> str:
    from triton import knobs

    path = knobs.nvidia.cuobjdump.path
    if not path or not os.path.exists(path):
        pytest.skip("Triton's bundled cuobjdump is missing")
    return path


DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# Elements per 16-byte vector store, and the PTX store that carries them.
VECTOR_STORE = {torch.float32: r"st\.global\.v4\.b32", torch.float16: r"st\.global\.v4\.b32",
                torch.bfloat16: r"st\.global\.v4\.b32", torch.float64: r"st\.global\.v2\.b64"}


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_float_arithmetic_is_round_to_nearest_only(dtype, aligned):
    k = _compile(dtype, 1024, 4, aligned)
    ptx = k.asm["ptx"]
    assert C.ptx_float_violations(ptx) == []
    # The value path is there (not folded away): Philox multiplies and the rounded float ops of erfinv.
    assert len(re.findall(r"\bmul\.hi\.u32", ptx)) >= 20
    assert len(re.findall(r"\bmul\.rn\.f32", ptx)) >= 100
    assert "sqrt.rn.f32" in ptx


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_aligned_groups_store_full_blocks_as_vectors(dtype):
    aligned = _compile(dtype, 1024, 4, True).asm["ptx"]
    unaligned = _compile(dtype, 1024, 4, False).asm["ptx"]
    # One vectorized full-block store per path (constant, dirac, per-element, per-quad) at least.
    assert len(re.findall(VECTOR_STORE[dtype], aligned)) >= 4, re.findall(r"st\.global\S*", aligned)
    assert not re.search(r"st\.global\.v\d", unaligned), "unaligned groups must not use vector stores"


def test_autotune_configs_compile_without_spills():
    TF, *_ = _triton_or_skip()
    cuobjdump = _cuobjdump()
    problems = []
    for cfg in TF._gpu_configs():
        block, warps = cfg.kwargs["BLOCK"], cfg.num_warps
        for aligned in (True, False):
            k = _compile(torch.bfloat16, block, warps, aligned)
            res = C.cubin_resources(k.asm["cubin"], cuobjdump)
            assert res, "cuobjdump reported no function"
            problems += [f"BLOCK={block} warps={warps} aligned={aligned}: {p}"
                         for p in C.resource_violations(res, threads=32 * warps)]
    assert problems == []


def test_chunk_is_a_multiple_of_every_block():
    """The program map does not depend on the block size, and ALIGNED's multiple_of(vstart, 16) holds."""
    TF, *_ = _triton_or_skip()
    for cfg in TF._gpu_configs():
        assert TF.GPU_CHUNK_MIN % cfg.kwargs["BLOCK"] == 0
    assert TF.INTERPRET_CHUNK % TF.INTERPRET_BLOCK == 0 and TF.INTERPRET_CHUNK % 16 == 0
