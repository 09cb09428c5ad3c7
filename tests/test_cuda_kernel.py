"""The CUDA kernel (``torch.ops.fastinit.fill_group`` on CUDA tensors) against the reference, bit for bit.

Every bitwise test runs twice: on a GPU ("cuda", skipped without one) and as the host emulation of the same
launch ("emulated": ``fastinit::_fill_group_cuda_emulated`` runs the kernel's code, csrc/fill_cuda_kernel.h,
for every block and thread on the CPU), so the kernel's index mapping is checked on every machine.
"""

from __future__ import annotations

import gc
import math
import random

import pytest
import torch

from fastinit import _ext, stream
from fastinit import tables as T
from fastinit.reference import fill_group_reference
from fastinit.tables import Resolved, ShardMap, build_tables


def _why_skip() -> str | None:
    ok, why = _ext.load()
    if not ok:
        return f"extension not built: {why}"
    if not torch._C._dispatch_has_kernel_for_dispatch_key("fastinit::fill_group", "CUDA"):
        return "fastinit._C has no CUDA kernel (built against a CPU-only torch or without CUDA_HOME)"
    if not torch.cuda.is_available():
        return "no CUDA GPU available"
    return None


def _why_no_emulation() -> str | None:
    ok, why = _ext.load()
    return None if ok else f"extension not built: {why}"


cuda_only = pytest.mark.skipif(_why_skip() is not None, reason=str(_why_skip()))


@pytest.fixture(params=["cuda", "emulated"])
def launch(request):
    """(device, fill): the real CUDA launch, or its host emulation with at most ``max_grid`` blocks."""
    if request.param == "cuda":
        if _why_skip() is not None:
            pytest.skip(_why_skip())
        return "cuda", lambda outs, table, params, seed, max_grid=None: torch.ops.fastinit.fill_group(
            outs, table, params, seed)
    if _why_no_emulation() is not None:
        pytest.skip(_why_no_emulation())
    return "cpu", lambda outs, table, params, seed, max_grid=1 << 16: \
        torch.ops.fastinit._fill_group_cuda_emulated(outs, table, params, seed, max_grid)

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
_INT_VIEW = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
             torch.float64: torch.int64}
INF = math.inf
SPECS = [
    Resolved(T.KIND_CONSTANT, (0.1, 0, 0, 0, 0, 0)),
    Resolved(T.KIND_CONSTANT, (1 / 3, 0, 0, 0, 0, 0)),
    Resolved(T.KIND_UNIFORM, (0.0, 0.0360843912, 0, 0, -0.0360843912, 0.0360843912)),
    Resolved(T.KIND_UNIFORM, (0.25, 1.75, 0, 0, -1.5, 2.0)),
    Resolved(T.KIND_UNIFORM, (0.5, 0.5, 0, 0, 0.0, 1.0)),  # bf16/fp16: clamped below 1 (contract v2)
    Resolved(T.KIND_UNIFORM, (1.00000005, 0.00000005, 0, 0, 1.0, 1.0000001)),  # float32: all values clamped
    Resolved(T.KIND_UNIFORM, (0.1 + 5e-13, 5e-13, 0, 0, 0.1, 0.1 + 1e-12)),  # float64: double arithmetic
    Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.0, 1.0, -INF, INF)),
    Resolved(T.KIND_NORMAL, (0.0, 0.9544997215270996, 0.0, 1.0, -2.0, 2.0)),
    Resolved(T.KIND_NORMAL, (0.0, 1.0, 1e-50, 1e-50, -INF, INF)),  # float64: not 0
    Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.0, 1e300, -INF, INF)),  # float64: not inf
    Resolved(T.KIND_DIRAC, iparams=(54, 9, 2, 4)),
    Resolved(T.KIND_DIRAC, iparams=(7, 1, 5, 0)),
]
SHARDS = [ShardMap(), ShardMap(base=3), ShardMap(base=2**33 + 1), ShardMap(base=5, row_len=7, row_stride=13),
          ShardMap(base=1030, row_len=1001, row_stride=4099)]
NUMELS = [0, 1, 3, 4, 5, 7, 13, 17, 64, 65, 1009, 65537, 1_000_003]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(_INT_VIEW[t.dtype])


def _outputs(rows, dtype, device, offset: bool) -> list[torch.Tensor]:
    # offset: views one element into their storage, so 16-byte vector stores never line up
    if offset:
        return [torch.full((n + 1,), 7.0, dtype=dtype, device=device)[1:] for n, *_ in rows]
    return [torch.full((n,), 7.0, dtype=dtype, device=device) for n, *_ in rows]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("trial", range(3))
def test_cuda_matches_reference(trial, dtype, launch):
    device, fill = launch
    rng = random.Random(trial)
    rows = [(rng.choice(NUMELS), rng.getrandbits(64), rng.choice(SPECS), rng.choice(SHARDS)) for _ in range(40)]
    rows += [(n, rng.getrandbits(64), s, ShardMap(base=1)) for s in SPECS for n in (5, 1_000_003)]
    table, params = build_tables(rows, dtype)
    seed = T.to_signed64(rng.getrandbits(64) | (1 << 63))
    # trial 1: unaligned outputs; trial 2: a grid smaller than the block count (the grid-stride loop)
    outs = _outputs(rows, dtype, device, offset=trial == 1)
    refs = [torch.full((n,), -9.0, dtype=dtype) for n, *_ in rows]
    fill(outs, table, params, seed, max_grid=7 if trial == 2 else 1 << 16)
    fill_group_reference(refs, table, params, seed)
    for i, (o, r) in enumerate(zip(outs, refs)):
        assert torch.equal(bits(o.cpu()), bits(r)), (i, rows[i])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_every_shard_map_and_size(dtype, launch):
    """Each (spec, shard map, size) alone and all together: run edges, partial quads, empty tensors."""
    device, fill = launch
    rng = random.Random(7)
    shards = SHARDS + [ShardMap(base=2**31 - 2, row_len=64, row_stride=2**20 + 1), ShardMap(base=4, row_len=8,
                                                                                               row_stride=12)]
    rows = [(n, rng.getrandbits(64), s, m) for s in SPECS for m in shards for n in NUMELS[:-1]]
    table, params = build_tables(rows, dtype)
    outs = _outputs(rows, dtype, device, offset=False)
    refs = [torch.full((n,), -9.0, dtype=dtype) for n, *_ in rows]
    fill(outs, table, params, -5)
    fill_group_reference(refs, table, params, -5)
    bad = [rows[i] for i, (o, r) in enumerate(zip(outs, refs)) if not torch.equal(bits(o.cpu()), bits(r))]
    assert bad == []


def test_emulation_checks_its_arguments():
    if _why_no_emulation() is not None:
        pytest.skip(_why_no_emulation())
    table, params = build_tables([(4, 0, SPECS[0], ShardMap())])
    with pytest.raises(RuntimeError, match="max_grid must be >= 1"):
        torch.ops.fastinit._fill_group_cuda_emulated([torch.empty(4)], table, params, 0, 0)
    with pytest.raises(RuntimeError, match="says NUMEL 4"):
        torch.ops.fastinit._fill_group_cuda_emulated([torch.empty(5)], table, params, 0, 1)


@cuda_only
def test_one_kernel_launch_per_group():
    rows = [(n, i, SPECS[i % len(SPECS)], ShardMap()) for i, n in enumerate([10, 1000, 100_000, 3] * 50)]
    table, params = build_tables(rows)
    outs = [torch.empty(n, device="cuda") for n, *_ in rows]
    torch.ops.fastinit.fill_group(outs, table, params, 1)  # warm up
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        torch.ops.fastinit.fill_group(outs, table, params, 1)
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
               and "fill_group_kernel" in e.name]
    others = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
              and "fill_group_kernel" not in e.name and "Memcpy" not in e.name and "memcpy" not in e.name]
    assert len(kernels) == 1, [e.name for e in kernels]
    assert not others, others


@cuda_only
@pytest.mark.slow
def test_cuda_bfloat16_past_2_pow_31_elements():
    n = 2**31 + 2**20 + 3
    if torch.cuda.mem_get_info()[0] < 6 * 2**30:
        pytest.skip("needs about 5 GB of free GPU memory")
    key, seed = 0x0123456789ABCDEF, -42
    res = SPECS[8]
    table, params = build_tables([(n, key, res, ShardMap(base=1))], torch.bfloat16)
    out = torch.empty(n, dtype=torch.bfloat16, device="cuda")
    try:
        torch.ops.fastinit.fill_group([out], table, params, seed)
        local = torch.tensor([0, 3, 2**31 - 1, 2**31, 2**31 + 1, 2**31 + 2, 2**31 + 3, n - 2, n - 1]
                             + random.Random(0).sample(range(2**31, n), 20), dtype=torch.int64)
        words = stream.raw_bits(local + 1, key, seed & (2**64 - 1))
        want = stream.transform(T.KIND_NORMAL, stream.symmetric_uniform(words), params[0].tolist()).to(torch.bfloat16)
        assert torch.equal(bits(out[local.cuda()].cpu()), bits(want))
    finally:
        del out
        gc.collect()
        torch.cuda.empty_cache()
