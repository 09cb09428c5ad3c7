"""Whether two strided views of one storage share an element: exact, at a bounded cost.

Extents that do not intersect never share. Otherwise a lattice test: every element of a view lies at
``offset + sum(i_k * stride_k)``, so all of them are congruent to its offset modulo the gcd of the
strides; two views whose offsets differ modulo the gcd of all their strides are disjoint
(``base[0::2]`` and ``base[1::2]``). What is left is decided by marking the elements of one view in a
bitmap of the common extent and reading the other through it, when that extent is at most
``EXACT_CHECK_ELEMENTS``; beyond it the views are reported as sharing (a refusal, never a race).
"""

from __future__ import annotations

import math

import torch

EXACT_CHECK_ELEMENTS = 1 << 26  # bitmap bytes for the exact check of two large, interleaved views


def _extent(t: torch.Tensor) -> tuple[int, int]:
    """[first, last] storage element a non-empty strided view can touch."""
    last = t.storage_offset() + sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride()) if s > 0)
    return t.storage_offset(), last


def views_share_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether non-empty strided views ``a`` and ``b`` of the same storage have an element in common."""
    if a.element_size() != b.element_size():  # views of one storage as different dtypes: byte extents only
        fa, la = _extent(a)
        fb, lb = _extent(b)
        sa, sb = a.element_size(), b.element_size()
        return fa * sa <= (lb + 1) * sb - 1 and fb * sb <= (la + 1) * sa - 1
    fa, la = _extent(a)
    fb, lb = _extent(b)
    if la < fb or lb < fa:
        return False
    g = 0
    for t in (a, b):
        for n, st in zip(t.shape, t.stride()):
            if n > 1:
                g = math.gcd(g, st)
    if g > 1 and (fa - fb) % g != 0:
        return False
    lo, hi = min(fa, fb), max(la, lb)
    if hi - lo + 1 > EXACT_CHECK_ELEMENTS:
        return True
    with torch._C.DisableTorchFunction():
        mark = torch.zeros(hi - lo + 1, dtype=torch.bool)
        mark.as_strided(a.shape, a.stride(), fa - lo).fill_(True)
        return bool(mark.as_strided(b.shape, b.stride(), fb - lo).any())
