"""The argument tables every fused backend consumes: one row per tensor of a (device, dtype) group.

A group is launched as ``fill_group(outs, table, params, seed)``:

- ``outs``: the contiguous output tensors (one dtype, one device), written in place;
- ``table``: int64 ``[T, TABLE_COLS]`` on the CPU, columns below;
- ``params``: float64 ``[T, PARAM_COLS]`` on the CPU, written for the group's dtype by
  :func:`build_tables` (stream contract v2, docs/STREAM.md section 5): float32 / bfloat16 / float16
  groups hold float32 values (exactly representable) for the random kinds, float64 groups hold the
  exact doubles a float64 tensor computes with; CONSTANT holds the fill value as given;
- ``seed``: the 64-bit seed as a signed int64 (two's complement).

Local element ``j`` of ``outs[t]`` (row-major) is global element
``BASE + (j // ROW_LEN) * ROW_STRIDE + (j % ROW_LEN)`` of the unsharded tensor; its value is
the kind's function of the stream word at that global index (docs/STREAM.md).
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass

import torch

from .stream import KIND_CONSTANT, KIND_DIRAC, KIND_NORMAL, KIND_UNIFORM

# int64 table columns
NUMEL = 0  # local element count
KEY = 1  # 64-bit tensor key (signed two's complement)
KIND = 2  # KIND_CONSTANT / KIND_UNIFORM / KIND_NORMAL / KIND_DIRAC
BASE = 3  # global index of local element 0
ROW_LEN = 4  # local elements per contiguous run of global indices (>= 1)
ROW_STRIDE = 5  # global index distance between consecutive runs
DIRAC_INNER = 6  # DIRAC: elements per output channel (prod(global_shape[1:]))
DIRAC_SPATIAL = 7  # DIRAC: elements per (out, in) pair (prod(global_shape[2:]))
DIRAC_OUT_PER_GROUP = 8  # DIRAC: output channels per group
DIRAC_CENTER = 9  # DIRAC: flat index of the centre tap within the spatial block
TABLE_COLS = 10

# float64 parameter columns (meaning per kind)
P_CENTER = 0  # UNIFORM, NORMAL: x = s * P_HALF_WIDTH + P_CENTER ; CONSTANT: the value
P_HALF_WIDTH = 1
P_MEAN = 2  # NORMAL: v = z * P_STD + P_MEAN, then clamped to [P_LOW, P_HIGH]
P_STD = 3
P_LOW = 4  # UNIFORM: v clamped to [P_LOW, P_HIGH]; in a Resolved these are a and b of U(a, b)
P_HIGH = 5
PARAM_COLS = 6

__all__ = [
    "KIND_CONSTANT", "KIND_UNIFORM", "KIND_NORMAL", "KIND_DIRAC", "TABLE_COLS", "PARAM_COLS",
    "Resolved", "ShardMap", "build_tables", "to_signed64",
]


def to_signed64(v: int) -> int:
    """The int64 whose two's complement bits are the unsigned 64-bit ``v``."""
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= (1 << 63) else v


@dataclass(frozen=True)
class Resolved:
    """A distribution resolved to the numbers a kernel needs (see the column docs above), as exact doubles.

    UNIFORM(a, b) is ``(c, h, 0, 0, a, b)`` with ``c = (a + b) / 2, h = (b - a) / 2``; NORMAL is
    ``(c, h, mean, std, lo, hi)``. :func:`build_tables` turns them into one group dtype's row.
    """

    kind: int
    params: tuple[float, ...] = (0.0,) * PARAM_COLS
    iparams: tuple[int, int, int, int] = (1, 1, 1, 0)


@dataclass(frozen=True)
class ShardMap:
    """Where a local (row-major, contiguous) block sits in the global tensor's flat index space."""

    base: int = 0
    row_len: int = 0  # 0 means "one run covering the whole local tensor"
    row_stride: int = 0

    def row(self, numel: int) -> tuple[int, int, int]:
        """(BASE, ROW_LEN, ROW_STRIDE) for a local tensor of ``numel`` elements."""
        if self.row_len <= 0 or self.row_len >= numel:
            return self.base, max(numel, 1), 0
        return self.base, self.row_len, self.row_stride


def _next_below(v: torch.Tensor) -> torch.Tensor:
    """The largest value of ``v``'s dtype strictly below each element (element-wise nextafter towards -inf)."""
    return torch.nextafter(v, torch.full_like(v, -math.inf))


def _dtype_params(kinds: torch.Tensor, params: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The float64 params of a group of ``dtype`` from exact Resolved params (stream contract v2, section 5)."""
    out = params.clone()
    rand = (kinds == KIND_UNIFORM) | (kinds == KIND_NORMAL)
    uni = kinds == KIND_UNIFORM
    if dtype == torch.float64:
        # x of the normal is still a float32 computation; everything after z, and the uniform, is double.
        normal = kinds == KIND_NORMAL
        out[normal, :2] = params[normal, :2].float().double()
        a, b = params[uni, P_LOW], params[uni, P_HIGH]
        out[uni, P_HIGH] = torch.where(b > a, _next_below(b), a)
        return out
    out[rand, :4] = params[rand, :4].float().double()
    out[rand & ~uni, 4:] = params[rand & ~uni, 4:].float().double()
    # torch draws from [dtype(a), dtype(b)): lo = dtype(a), hi = the dtype's largest value below dtype(b)
    lo = params[uni, P_LOW].to(dtype)
    hi = _next_below(params[uni, P_HIGH].to(dtype))
    out[uni, P_LOW] = lo.double()
    out[uni, P_HIGH] = torch.maximum(hi, lo).double()
    return out


def _check_uniform(table: torch.Tensor, params: torch.Tensor) -> None:
    # A UNIFORM row clamps to [P_LOW, P_HIGH]: rows written before contract v2 left them 0 and would
    # silently give all zeros, so refuse them loudly.
    uni = table[:, KIND] == KIND_UNIFORM
    h, a, b = params[:, P_HALF_WIDTH], params[:, P_LOW], params[:, P_HIGH]
    bad = uni & ~((a <= b) & ((a < b) | (h == 0)))
    if bool(bad.any()):
        row = params[int(bad.nonzero()[0, 0])]
        raise ValueError(f"UNIFORM params must be (c, h, 0, 0, a, b) with a <= b (contract v2), "
                         f"got {tuple(row.tolist())}")


_TOP = 1 << 63
_WRAP = 1 << 64


def build_tables(rows: list[tuple[int, int, Resolved, ShardMap]],
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables for ``rows`` of (local numel, 64-bit key, resolved distribution, shard map) of a ``dtype`` group.

    The params are written for ``dtype`` (docs/STREAM.md section 5): the same Resolved gives other numbers
    in a float64 group than in a float32 one, so a table is only valid for the dtype it was built for.
    """
    if not rows:
        return torch.empty((0, TABLE_COLS), dtype=torch.int64), torch.empty((0, PARAM_COLS), dtype=torch.float64)
    # Per row only what differs from row to row (numel, key, which Resolved, shard) goes through Python; the
    # columns are then filled whole: per-row tensors, or nested lists, cost more than the kernel on small models.
    numels, keys, which = array.array("q"), array.array("q"), array.array("q")
    index: dict[int, int] = {}  # id(Resolved) -> its row in the distinct ones
    distinct: list[Resolved] = []
    sharded = False
    for numel, key, res, smap in rows:
        numels.append(numel)
        key &= _WRAP - 1
        keys.append(key - _WRAP if key >= _TOP else key)
        i = index.get(id(res))
        if i is None:
            i = index[id(res)] = len(distinct)
            distinct.append(res)
        which.append(i)
        if smap.base or smap.row_len > 0:
            sharded = True
    n = len(rows)
    at = torch.frombuffer(which, dtype=torch.int64)
    numel_col = torch.frombuffer(numels, dtype=torch.int64)
    table = torch.empty((n, TABLE_COLS), dtype=torch.int64)
    table[:, NUMEL] = numel_col
    table[:, KEY] = torch.frombuffer(keys, dtype=torch.int64)
    table[:, KIND] = torch.tensor([r.kind for r in distinct], dtype=torch.int64)[at]
    if sharded:
        table[:, BASE:ROW_STRIDE + 1] = torch.tensor([smap.row(numel) for numel, _, _, smap in rows], dtype=torch.int64)
    else:  # every row one whole tensor: one run of its numel elements from global index 0
        table[:, BASE] = 0
        table[:, ROW_LEN] = numel_col.clamp(min=1)
        table[:, ROW_STRIDE] = 0
    table[:, DIRAC_INNER:] = torch.tensor([r.iparams for r in distinct], dtype=torch.int64)[at]
    params = torch.tensor([r.params for r in distinct], dtype=torch.float64).reshape(-1, PARAM_COLS)[at]
    _check_uniform(table, params)
    return table, _dtype_params(table[:, KIND], params, dtype)
