"""``fastinit::fill_group_triton``: one Triton launch fills a whole (device, dtype) group.

The kernel implements docs/STREAM.md operation by operation and must match
:func:`fastinit.reference.fill_group_reference` bit for bit.

Device-side argument: ONE packed int64 buffer (one host-to-device copy per launch)::

    [0] seed   [1] CHUNK (virtual elements per program)   [2] offset of the program map
    [HDR + t * NCOL + col]   one row per tensor, columns C_* below (params as float64 bits)
    [map + pid]              (t << MAP_SHIFT) | chunk index: which tensor and which chunk a program fills

Each tensor is cut into CHUNK-element pieces of its *virtual* index space, one program each; a program
loops over its chunk in BLOCK-element steps. CHUNK is a multiple of every BLOCK, so the map does not depend
on the block size and the block size can be autotuned freely.

Index modes (column C_MODE), for the random kinds:

- MODE_QUAD_FLAT: the local tensor is one run of global indices. Virtual index ``v = j + (BASE & 3)``
  lines quads of ``v`` up with quads of global indices: one Philox call per quad, all four words used.
- MODE_QUAD_ROWS: rows of ROW_LEN local elements, BASE, ROW_LEN and ROW_STRIDE all multiples of 4:
  local quads are global quads, still one Philox call per quad.
- MODE_ELEMENT: any other row mapping; one Philox call per element (its lane picked from the four words).

CONSTANT and DIRAC need no stream words and walk local indices directly.

Stores: a full block is stored without a mask. When every output of the group is 16-byte aligned and every
flat random tensor starts on a global quad (``ALIGNED``, decided on the host), the kernel also tells the
compiler so (``tl.multiple_of``) and full blocks become 16-byte vector stores (tests/test_gpu_codegen.py
reads them in the PTX); otherwise they are element stores.

Float arithmetic: on NVIDIA GPUs every rounding step goes through ``mul.rn.f32`` / ``add.rn.f32`` /
``sub.rn.f32`` inline PTX, which neither LLVM nor ptxas contracts into an FMA, so the values do not depend
on compile options (torch.compile/Inductor compiles user kernels with fp fusion on). Eager launches also
pass ``enable_fp_fusion=False``. Under ``TRITON_INTERPRET=1`` the plain operators are numpy float32
operations, which are IEEE and never fused.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch

from .. import tables as T

try:
    import triton
    import triton.language as tl

    TRITON_ERROR: str | None = None
except Exception as exc:  # noqa: BLE001 - any import failure (missing, broken install) disables the backend
    triton = None
    tl = None
    TRITON_ERROR = f"triton is not importable: {type(exc).__name__}: {exc}"

__all__ = ["TRITON_ERROR", "fill_group_triton", "interpreting", "launch", "pack_tables"]

# Packed-buffer layout.
HDR = 3
C_PTR, C_NUMEL, C_KEY, C_KIND, C_BASE, C_ROW_LEN, C_ROW_STRIDE, C_MODE, C_VLEN = range(9)
C_DIRAC = 9  # four columns: inner, spatial, out per group, center
C_PARAM = 13  # PARAM_COLS float64 columns stored as their int64 bits
NCOL = C_PARAM + T.PARAM_COLS
MAP_SHIFT = 40  # chunk index in the low 40 bits of a map entry, tensor index above

MODE_QUAD_FLAT, MODE_QUAD_ROWS, MODE_ELEMENT = 0, 1, 2

# Block sizes. Under the interpreter a small block and chunk keep the tests fast and still exercise
# several blocks per program and several programs per tensor.
INTERPRET_BLOCK = 64
INTERPRET_CHUNK = 256
GPU_CHUNK_MIN = 1 << 14  # multiple of every autotuned BLOCK
GPU_TARGET_PROGRAMS = 1 << 15  # enough programs to fill any GPU, a map small enough to upload in microseconds

_TORCH_TO_TL = {}


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


if TRITON_ERROR is None:
    # The layout constants, visible to the kernel as compile-time globals.
    _HDR = tl.constexpr(HDR)
    _NCOL = tl.constexpr(NCOL)
    _MAP_SHIFT = tl.constexpr(MAP_SHIFT)
    _MAP_MASK = tl.constexpr((1 << MAP_SHIFT) - 1)

    _TORCH_TO_TL = {
        torch.float32: tl.float32, torch.float16: tl.float16,
        torch.bfloat16: tl.bfloat16, torch.float64: tl.float64,
    }

    # ---- float32 arithmetic without contraction -------------------------------------------------
    @triton.jit
    def _mul(a, b, RN: tl.constexpr):
        if RN:
            return tl.inline_asm_elementwise("mul.rn.f32 $0, $1, $2;", "=f,f,f", [a, b], dtype=tl.float32,
                                             is_pure=True, pack=1)
        else:
            return a * b

    @triton.jit
    def _add(a, b, RN: tl.constexpr):
        if RN:
            return tl.inline_asm_elementwise("add.rn.f32 $0, $1, $2;", "=f,f,f", [a, b], dtype=tl.float32,
                                             is_pure=True, pack=1)
        else:
            return a + b

    @triton.jit
    def _sub(a, b, RN: tl.constexpr):
        if RN:
            return tl.inline_asm_elementwise("sub.rn.f32 $0, $1, $2;", "=f,f,f", [a, b], dtype=tl.float32,
                                             is_pure=True, pack=1)
        else:
            return a - b

    @triton.jit
    def _mul64(a, b, RN: tl.constexpr):
        if RN:
            return tl.inline_asm_elementwise("mul.rn.f64 $0, $1, $2;", "=d,d,d", [a, b], dtype=tl.float64,
                                             is_pure=True, pack=1)
        else:
            return a * b

    @triton.jit
    def _add64(a, b, RN: tl.constexpr):
        if RN:
            return tl.inline_asm_elementwise("add.rn.f64 $0, $1, $2;", "=d,d,d", [a, b], dtype=tl.float64,
                                             is_pure=True, pack=1)
        else:
            return a + b

    @triton.jit
    def _clamp(x, lo, hi):
        # tl.where, not tl.maximum/minimum: those drop NaN on the GPU; the header's f_max/f_min keep it
        x = tl.where(x < lo, lo, x)
        return tl.where(x > hi, hi, x)

    @triton.jit
    def _horner9(y, c0: tl.constexpr, c1: tl.constexpr, c2: tl.constexpr, c3: tl.constexpr, c4: tl.constexpr,
                 c5: tl.constexpr, c6: tl.constexpr, c7: tl.constexpr, c8: tl.constexpr, RN: tl.constexpr):
        # p = c0; p = p * y + ck for each further coefficient, two roundings per step.
        p = _add(_mul(y, c0, RN), c1, RN)
        p = _add(_mul(p, y, RN), c2, RN)
        p = _add(_mul(p, y, RN), c3, RN)
        p = _add(_mul(p, y, RN), c4, RN)
        p = _add(_mul(p, y, RN), c5, RN)
        p = _add(_mul(p, y, RN), c6, RN)
        p = _add(_mul(p, y, RN), c7, RN)
        p = _add(_mul(p, y, RN), c8, RN)
        return p

    # ---- the stream (docs/STREAM.md sections 1-3) ------------------------------------------------
    @triton.jit
    def _philox(c0, c1, c2, c3, k0, k1):
        for r in tl.static_range(10):
            if r > 0:
                k0 = k0 + 0x9E3779B9
                k1 = k1 + 0xBB67AE85
            hi0 = tl.umulhi(c0, 0xD2511F53)
            lo0 = c0 * 0xD2511F53
            hi1 = tl.umulhi(c2, 0xCD9E8D57)
            lo1 = c2 * 0xCD9E8D57
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        return c0, c1, c2, c3

    @triton.jit
    def _philox_q(q, t0, t1, k0, k1):
        """Philox words of 64-bit quad counters ``q`` for the tensor key words (t0, t1)."""
        c0 = q.to(tl.uint32)
        c1 = (q >> 32).to(tl.uint32)
        zero = tl.zeros(q.shape, tl.uint32)
        return _philox(c0, c1, zero + t0, zero + t1, k0, k1)

    @triton.jit
    def _log_f32(y, RN: tl.constexpr):
        bits = y.to(tl.int32, bitcast=True)
        e = (bits >> 23) - 127
        m = ((bits & 0x7FFFFF) | 0x3F800000).to(tl.float32, bitcast=True)
        big = m > 1.4142135381698608  # SQRT2 = 0x1.6a09e6p+0
        m = tl.where(big, _mul(m, 0.5, RN), m)
        e = tl.where(big, e + 1, e)
        ef = e.to(tl.float32)
        f = _sub(m, 1.0, RN)
        z = _mul(f, f, RN)
        r = _horner9(f, 0.07037683576345444, -0.11514610052108765, 0.11676998436450958,
                     -0.12420140951871872, 0.14249323308467865, -0.16668057441711426, 0.2000071406364441,
                     -0.24999994039535522, 0.3333333134651184, RN)
        r = _mul(r, f, RN)
        r = _mul(r, z, RN)
        r = _add(r, _mul(ef, -0.00021219444170128554, RN), RN)
        r = _sub(r, _mul(z, 0.5, RN), RN)
        r = _add(f, r, RN)
        r = _add(r, _mul(ef, 0.693359375, RN), RN)
        return r

    @triton.jit
    def _erfinv_f32(x, RN: tl.constexpr):
        t = _mul(_sub(1.0, x, RN), _add(1.0, x, RN), RN)
        w = -_log_f32(t, RN)
        central = _horner9(_sub(w, 2.5, RN), 2.810226362726098e-08, 3.432739390518691e-07, -3.523387704262859e-06,
                           -4.391506536194356e-06, 0.00021858086984138936, -0.001253725029528141,
                           -0.004177681636065245, 0.24664072692394257, 1.5014094114303589, RN)
        tail = _horner9(_sub(tl.sqrt_rn(w), 3.0, RN), -0.0002002142573473975, 0.0001009505576803349,
                        0.0013493432197719812, -0.003673428436741233, 0.005739507731050253,
                        -0.007622461300343275, 0.00943887047469616, 1.0016740560531616, 2.832976818084717, RN)
        p = tl.where(w < 5.0, central, tail)
        return _mul(p, x, RN)

    @triton.jit
    def _value(bits, kind, p, RN: tl.constexpr, F64: tl.constexpr):
        """Value of stream words ``bits`` for the UNIFORM (1) or NORMAL (2) kind (stream contract v2).

        ``p`` = (c, h, mean, std, lo, hi) as float64 scalars, a row written for the output dtype: float32 math
        (values float32-exact) for float32 / bfloat16 / float16 outputs; for float64 outputs (F64) the uniform
        and the normal's scale, shift and clamp run in double.
        """
        c64, h64, mean64, std64, lo64, hi64 = p
        c = c64.to(tl.float32)
        h = h64.to(tl.float32)
        m = (bits >> 9).to(tl.int32)
        s = _mul((m * 2 + 1 - 8388608).to(tl.float32), 1.1920928955078125e-07, RN)  # exact: 2^-23
        if kind == 2:
            x = _add(_mul(s, h, RN), c, RN)
            x = _clamp(x, -0.9999999403953552, 0.9999999403953552)
            z = _mul(_erfinv_f32(x, RN), 1.4142135381698608, RN)
            if F64:
                v = _clamp(_add64(_mul64(z.to(tl.float64), std64, RN), mean64, RN), lo64, hi64)
            else:
                v = _add(_mul(z, std64.to(tl.float32), RN), mean64.to(tl.float32), RN)
                v = _clamp(v, lo64.to(tl.float32), hi64.to(tl.float32))
        else:
            if F64:
                v = _clamp(_add64(_mul64(s.to(tl.float64), h64, RN), c64, RN), lo64, hi64)
            else:
                v = _clamp(_add(_mul(s, h, RN), c, RN), lo64.to(tl.float32), hi64.to(tl.float32))
        return v

    @triton.jit
    def _to_out(v, OUT_DTYPE: tl.constexpr):
        """Round float32 ``v`` to nearest-even in the output dtype (float64 values are already float64)."""
        if OUT_DTYPE == tl.bfloat16:
            # Integer rounding: exact on every target (the interpreter's float32->bfloat16 cast truncates).
            b = v.to(tl.uint32, bitcast=True)
            r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
            r = tl.where(v != v, 0x7FC0, r)  # NaN -> canonical quiet NaN, as c10::BFloat16
            return r.to(tl.uint16).to(tl.bfloat16, bitcast=True)
        else:
            return v.to(OUT_DTYPE)

    @triton.jit
    def _store(out, off, lane_off, v, numel, BLOCK: tl.constexpr):
        """Store block ``off`` of local elements; unmasked when the block is full, so that it can vectorize."""
        j = off + lane_off
        if off + BLOCK <= numel:
            tl.store(out + j, v)
        else:
            tl.store(out + j, v, mask=j < numel)

    @triton.jit
    def _dirac(g, d_inner, d_spatial, d_group, d_center):
        o = g // d_inner
        r = g % d_inner
        hit = ((o % d_group) == (r // d_spatial)) & ((r % d_spatial) == d_center)
        return hit.to(tl.float32)

    # ---- the kernel ------------------------------------------------------------------------------
    @triton.jit(do_not_specialize=["size_class"])
    def _fill_group_kernel(buf, size_class, OUT_DTYPE: tl.constexpr, BLOCK: tl.constexpr, RN: tl.constexpr,
                           ALIGNED: tl.constexpr):
        # size_class is unused by the code: it is part of the autotuning key (see _size_class).
        pid = tl.program_id(0).to(tl.int64)
        seed = tl.load(buf + 0)
        chunk = tl.load(buf + 1)
        entry = tl.load(buf + tl.load(buf + 2) + pid)
        t = entry >> _MAP_SHIFT
        vstart = (entry & _MAP_MASK) * chunk
        row = buf + _HDR + t * _NCOL
        out = tl.load(row + 0).to(tl.pointer_type(OUT_DTYPE))
        if ALIGNED:  # the host checked: 16-byte aligned outputs, quads start at local multiples of 4
            out = tl.multiple_of(out, 16)
            vstart = tl.multiple_of(vstart, 16)
        numel = tl.load(row + 1)
        key = tl.load(row + 2)
        kind = tl.load(row + 3)
        base = tl.load(row + 4)
        row_len = tl.load(row + 5)
        row_stride = tl.load(row + 6)
        mode = tl.load(row + 7)
        vend = tl.minimum(vstart + chunk, tl.load(row + 8))
        lane_off = tl.arange(0, BLOCK).to(tl.int64)

        if kind == 0:  # CONSTANT: the float64 parameter, converted as torch's fill_ does
            cval = tl.load(row + 13).to(tl.float64, bitcast=True)
            if OUT_DTYPE == tl.float64:
                cv = tl.zeros([BLOCK], tl.float64) + cval
            else:
                cv = _to_out(tl.zeros([BLOCK], tl.float32) + cval.to(tl.float32), OUT_DTYPE)
            for off in range(vstart, vend, BLOCK):
                _store(out, off, lane_off, cv, numel, BLOCK)
        elif kind == 3:  # DIRAC: a function of the global index only
            d_inner = tl.load(row + 9)
            d_spatial = tl.load(row + 10)
            d_group = tl.load(row + 11)
            d_center = tl.load(row + 12)
            for off in range(vstart, vend, BLOCK):
                j = off + lane_off
                g = base + (j // row_len) * row_stride + j % row_len
                v = _dirac(g, d_inner, d_spatial, d_group, d_center)
                _store(out, off, lane_off, _to_out(v, OUT_DTYPE), numel, BLOCK)
        else:  # UNIFORM / NORMAL
            k0 = seed.to(tl.uint32)
            k1 = (seed >> 32).to(tl.uint32)
            t0 = key.to(tl.uint32)
            t1 = (key >> 32).to(tl.uint32)
            prm = (tl.load(row + 13).to(tl.float64, bitcast=True), tl.load(row + 14).to(tl.float64, bitcast=True),
                   tl.load(row + 15).to(tl.float64, bitcast=True), tl.load(row + 16).to(tl.float64, bitcast=True),
                   tl.load(row + 17).to(tl.float64, bitcast=True), tl.load(row + 18).to(tl.float64, bitcast=True))
            if mode == 2:  # MODE_ELEMENT: one Philox call per element
                for off in range(vstart, vend, BLOCK):
                    j = off + lane_off
                    g = base + (j // row_len) * row_stride + j % row_len
                    w0, w1, w2, w3 = _philox_q(g >> 2, t0, t1, k0, k1)
                    lane = g & 3
                    bits = tl.where(lane == 0, w0, tl.where(lane == 1, w1, tl.where(lane == 2, w2, w3)))
                    v = _value(bits, kind, prm, RN, OUT_DTYPE == tl.float64)
                    _store(out, off, lane_off, _to_out(v, OUT_DTYPE), numel, BLOCK)
            else:  # one Philox call per quad, its four words interleaved back into element order
                pre = base & 3
                quad_off = tl.arange(0, BLOCK // 4).to(tl.int64) * 4
                lane4 = tl.arange(0, 4).to(tl.int64)
                for off in range(vstart, vend, BLOCK):
                    vq = off + quad_off  # virtual index of each quad's lane 0 (a multiple of 4)
                    if mode == 0:
                        gq = base - pre + vq
                        jq = vq - pre
                    else:
                        gq = base + (vq // row_len) * row_stride + vq % row_len
                        jq = vq
                    w0, w1, w2, w3 = _philox_q(gq >> 2, t0, t1, k0, k1)
                    # join stacks on a new last axis ([q, a, b] = join(..)[b][q, a]): (w0, w2), (w1, w3) -> w0 w1 w2 w3
                    bits = tl.reshape(tl.join(tl.join(w0, w2), tl.join(w1, w3)), [BLOCK])
                    v = _value(bits, kind, prm, RN, OUT_DTYPE == tl.float64)
                    if ALIGNED:  # pre == 0: quads are local quads, the block is one contiguous run
                        _store(out, off, lane_off, _to_out(v, OUT_DTYPE), numel, BLOCK)
                    else:
                        j = tl.reshape(jq[:, None] + lane4[None, :], [BLOCK])
                        tl.store(out + j, _to_out(v, OUT_DTYPE), mask=(j >= 0) & (j < numel))

    def _gpu_configs() -> list:
        # 4 or 8 elements per thread: 8 already take ~125 registers (16 spill), and registers x threads must
        # fit an SM, which rules out 1024 threads (tests/test_gpu_codegen.py compiles each of these for sm_90).
        shapes = ((1024, 4), (1024, 8), (2048, 8), (2048, 16), (4096, 16))  # (BLOCK, warps)
        return [triton.Config({"BLOCK": b}, num_warps=w) for b, w in shapes]

    # The autotuned variant is only built for real GPUs; the interpreter uses a fixed block.
    def _bench(kernel_call, quantiles):
        # Short windows (5 ms warm-up, 25 ms of runs): a group is written in milliseconds even for a 7B model.
        from triton.testing import do_bench

        return do_bench(kernel_call, warmup=5, rep=25, quantiles=quantiles)

    # Tuned once per (dtype, store variant, size class) and kept in Triton's on-disk cache, so a process pays for
    # tuning only the first time a machine sees that key.
    _fill_group_kernel_tuned = triton.autotune(configs=_gpu_configs(), key=["OUT_DTYPE", "ALIGNED", "size_class"],
                                               do_bench=_bench, cache_results=True)(_fill_group_kernel)


def _mode(numel: int, kind: int, base: int, row_len: int, row_stride: int) -> tuple[int, int]:
    """(index mode, virtual length) of one tensor (see the module docstring)."""
    if kind in (T.KIND_CONSTANT, T.KIND_DIRAC):
        return MODE_ELEMENT, numel
    if row_len >= numel or row_stride == row_len:
        return MODE_QUAD_FLAT, numel + (base & 3)
    if base % 4 == 0 and row_len % 4 == 0 and row_stride % 4 == 0:
        return MODE_QUAD_ROWS, numel
    return MODE_ELEMENT, numel


def _size_class(total: int) -> int:
    """Autotuning bucket of a group's element count: a block size tuned on a small group would stick otherwise."""
    return 0 if total < 1 << 20 else 1 if total < 1 << 26 else 2


def _chunk_for(total: int) -> int:
    """Elements per program: a power of two, a multiple of every BLOCK, ~GPU_TARGET_PROGRAMS programs."""
    if interpreting():
        return INTERPRET_CHUNK
    want = max(GPU_CHUNK_MIN, -(-total // GPU_TARGET_PROGRAMS))
    return 1 << (want - 1).bit_length()


class Packed(NamedTuple):
    """A group ready to launch: the packed buffer (on the CPU), its program count and its ALIGNED flag."""

    buf: torch.Tensor
    programs: int
    aligned: bool  # every output 16-byte aligned, every flat random tensor's quads start at local multiples of 4
    size_class: int  # autotuning bucket of the group's size


def pack_tables(outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> Packed:
    """The kernel's packed int64 buffer for a group (see the module docstring for its layout) and launch facts."""
    if table.dim() != 2 or table.shape[1] != T.TABLE_COLS or table.shape[0] != len(outs):
        raise ValueError(f"table must be int64 [{len(outs)}, {T.TABLE_COLS}], got {tuple(table.shape)}")
    if params.shape != (len(outs), T.PARAM_COLS):
        raise ValueError(f"params must be float64 [{len(outs)}, {T.PARAM_COLS}], got {tuple(params.shape)}")
    tab = table.to(torch.int64).tolist()
    pbits = params.to(torch.float64).contiguous().view(torch.int64).tolist()
    rows = []
    vlens = []
    aligned = True
    for out, r, pb in zip(outs, tab, pbits):
        numel, key, kind, base, row_len, row_stride = r[:6]
        if out.numel() != numel:
            raise ValueError(f"table says {numel} elements, the output tensor has {out.numel()}")
        if not out.is_contiguous():
            raise ValueError("fill_group_triton outputs must be contiguous")
        if kind not in (T.KIND_CONSTANT, T.KIND_UNIFORM, T.KIND_NORMAL, T.KIND_DIRAC):
            raise ValueError(f"unknown distribution kind {kind}")
        row_len = max(row_len, 1)
        mode, vlen = _mode(numel, kind, base, row_len, row_stride)
        if numel:
            aligned &= out.data_ptr() % 16 == 0 and (mode != MODE_QUAD_FLAT or base % 4 == 0)
        rows.append([out.data_ptr() if numel else 0, numel, key, kind, base, row_len, row_stride, mode, vlen,
                     *r[6:10], *pb])
        vlens.append(vlen if numel else 0)
    chunk = _chunk_for(sum(vlens))
    # The program map, vectorized (tens of thousands of programs for a 7B model): program i of tensor t
    # is (t << MAP_SHIFT) | i for i < ceil(vlen / chunk).
    counts = torch.tensor([-(-v // chunk) for v in vlens], dtype=torch.int64)
    n_prog = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(len(vlens), dtype=torch.int64), counts)
    first = torch.cumsum(counts, 0) - counts
    pmap = (owner << MAP_SHIFT) | (torch.arange(n_prog, dtype=torch.int64) - first[owner])
    map_off = HDR + NCOL * len(rows)
    head = torch.tensor([T.to_signed64(seed), chunk, map_off] + [v for r in rows for v in r], dtype=torch.int64)
    return Packed(torch.cat([head, pmap]), n_prog, aligned, _size_class(sum(vlens)))


def launch(outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
    """Fill ``outs`` (one device, one dtype, contiguous) in one kernel launch; the op's implementation."""
    if TRITON_ERROR is not None:
        raise RuntimeError(TRITON_ERROR)
    if not outs:
        return
    device, dtype = outs[0].device, outs[0].dtype
    if any(o.device != device or o.dtype != dtype for o in outs):
        raise ValueError("fill_group_triton takes one device and one dtype per call")
    if dtype not in _TORCH_TO_TL:
        raise ValueError(f"fill_group_triton does not fill {dtype}")
    host, n_prog, aligned, size_class = pack_tables(outs, table, params, seed)
    if n_prog == 0:
        return
    out_dtype = _TORCH_TO_TL[dtype]
    if interpreting():
        # The interpreter dereferences the table's raw pointers on the host: CPU memory only.
        if device.type != "cpu":
            raise ValueError(f"under TRITON_INTERPRET=1 fill_group_triton takes CPU tensors, not {device.type}")
        _fill_group_kernel[(n_prog,)](host, size_class, OUT_DTYPE=out_dtype, BLOCK=INTERPRET_BLOCK, RN=False,
                                      ALIGNED=aligned)
        return
    if device.type != "cuda":
        raise ValueError(f"fill_group_triton takes CUDA tensors (CPU ones under TRITON_INTERPRET=1), not {device}")
    rn = torch.version.hip is None  # the inline PTX is NVIDIA-only; elsewhere fp fusion off is what we have
    with torch.cuda.device(device):  # Triton launches on the current device
        # One pinned staging copy, asynchronous with respect to the host, ordered on the current stream.
        buf = host.pin_memory().to(device, non_blocking=True)
        _fill_group_kernel_tuned[(n_prog,)](buf, size_class, OUT_DTYPE=out_dtype, RN=rn, ALIGNED=aligned,
                                            enable_fp_fusion=False)


@torch.library.custom_op("fastinit::fill_group_triton", mutates_args=("outs",))
def fill_group_triton(outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
    """Fill a (device, dtype) group with the fastinit stream in one Triton launch (``fastinit::fill_group``)."""
    launch(outs, table, params, seed)


@fill_group_triton.register_fake
def _(outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
    return None
