"""``fill_group`` in plain PyTorch: the reference every compiled kernel is compared to, bit for bit.

It runs on any device torch supports and processes each tensor in chunks so that its temporaries
stay small (about 40 bytes per element of one chunk).
"""

from __future__ import annotations

import torch

from . import stream
from . import tables as T

CHUNK = 1 << 20  # elements per step; keeps temporaries to a few tens of MB


def _global_indices(start: int, count: int, base: int, row_len: int, row_stride: int, device) -> torch.Tensor:
    j = torch.arange(start, start + count, dtype=torch.int64, device=device)
    return base + (j // row_len) * row_stride + (j % row_len)


def _values(kind: int, g_start: int | None, g: torch.Tensor | None, count: int, key: int, seed: int,
            p: list[float], ip: list[int], device, out_dtype: torch.dtype) -> torch.Tensor:
    """Values of ``count`` elements, given contiguous or explicit global indices: float32 (float64 for CONSTANT
    and for the random kinds of float64 outputs), before the final rounding to ``out_dtype``."""
    if kind == T.KIND_CONSTANT:
        return torch.full((count,), p[T.P_CENTER], dtype=torch.float64, device=device)
    if g is None:
        g = torch.arange(g_start, g_start + count, dtype=torch.int64, device=device)
        bits = stream.raw_bits_range(g_start, count, key, seed, device) if kind != T.KIND_DIRAC else None
    else:
        bits = stream.raw_bits(g, key, seed) if kind != T.KIND_DIRAC else None
    if kind == T.KIND_DIRAC:
        inner, spatial, per_group, center = ip
        o = g // inner
        r = g % inner
        hit = ((o % per_group) == (r // spatial)) & ((r % spatial) == center)
        return hit.to(torch.float32)
    return stream.transform(kind, stream.symmetric_uniform(bits), p, out_dtype)


def fill_group_reference(outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
    """Write every tensor of a group as the stream contract says (the semantics of ``fastinit::fill_group``)."""
    tab = table.tolist()
    par = params.tolist()
    for out, row, p in zip(outs, tab, par):
        numel, key, kind, base, row_len, row_stride = row[:6]
        ip = row[6:]
        flat = out.view(-1)
        for start in range(0, numel, CHUNK):
            count = min(CHUNK, numel - start)
            contiguous = row_len >= numel or (start // row_len == (start + count - 1) // row_len)
            if contiguous:
                g0 = base + (start // row_len) * row_stride + (start % row_len)
                v = _values(kind, g0, None, count, key, seed, p, ip, out.device, out.dtype)
            else:
                g = _global_indices(start, count, base, row_len, row_stride, out.device)
                v = _values(kind, None, g, count, key, seed, p, ip, out.device, out.dtype)
            if kind == T.KIND_CONSTANT and out.dtype in (torch.float16, torch.bfloat16):
                v = v.to(torch.float32)  # torch's fill_ rounds through float for half types
            flat[start : start + count].copy_(v)
