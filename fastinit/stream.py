"""The fastinit random stream in plain PyTorch: the executable specification.

Every backend (the C++ CPU kernel, the CUDA kernel, the Triton kernel) must produce exactly the
values these functions produce. docs/STREAM.md spells out the same sequence of float32 operations;
``csrc/fastinit_stream.h`` and ``fastinit/kernels/triton_fill.py`` implement it again.

Integers are carried in int64 tensors holding unsigned 32-bit values, so the code runs on any
device torch supports (no uint32 arithmetic needed). Floating-point steps are separate float32
ops (torch never contracts two separate ops into a fused multiply-add), in the documented order.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10

# float32 constants, written as hex so that every language parses them to the same bits.
_f = float.fromhex
TWO_POW_M23 = _f("0x1p-23")
SQRT2 = _f("0x1.6a09e6p+0")
LN2_HI = _f("0x1.63p-1")  # 0.693359375
LN2_LO = _f("-0x1.bd0106p-13")  # -2.12194440e-4
# log1p(f) ~ f - f^2/2 + f^3 * P(f) on f in [sqrt(1/2) - 1, sqrt(2) - 1]; P's coefficients, highest first.
LOG_P = tuple(
    _f(h)
    for h in (
        "0x1.204376p-4", "-0x1.d7a370p-4", "0x1.de4a34p-4", "-0x1.fcba9ep-4", "0x1.23d37ep-3",
        "-0x1.555ca0p-3", "0x1.999d58p-3", "-0x1.fffff8p-3", "0x1.555554p-2",
    )
)
# Giles' single-precision erfinv: central branch (w < 5, polynomial in w - 2.5), highest first.
ERFINV_CENTRAL = tuple(
    _f(h)
    for h in (
        "0x1.e2cb10p-26", "0x1.70966cp-22", "-0x1.d8e6aep-19", "-0x1.26b582p-18", "0x1.ca65b6p-13",
        "-0x1.48a810p-10", "-0x1.11c9dep-8", "0x1.f91ec6p-3", "0x1.805c5ep+0",
    )
)
# Tail branch (w >= 5, polynomial in sqrt(w) - 3), highest first.
ERFINV_TAIL = tuple(
    _f(h)
    for h in (
        "-0x1.a3e136p-13", "0x1.a76ad6p-14", "0x1.61b8e4p-10", "-0x1.e17bcep-9", "0x1.7824f6p-8",
        "-0x1.f38baep-8", "0x1.354afcp-7", "0x1.006db6p+0", "0x1.6a9efcp+1",
    )
)
# Largest |x| fed to erfinv: keeps (1 - x)(1 + x) a normal float32 after truncation arithmetic.
X_MAX = _f("0x1.fffffep-1")  # 1 - 2^-24

# Distribution kinds (the KIND column of a group's table).
KIND_CONSTANT = 0
KIND_UNIFORM = 1
KIND_NORMAL = 2
KIND_DIRAC = 3


def _mulhilo32(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit halves of the 64-bit product of the constant ``a`` and ``b`` (both < 2^32)."""
    b_lo = b & 0xFFFF
    b_hi = b >> 16
    lo_part = b_lo * a  # < 2^48: no int64 overflow
    hi_part = b_hi * a
    lo = (lo_part + ((hi_part & 0xFFFF) << 16)) & MASK32
    hi = (hi_part + (lo_part >> 16)) >> 16
    return hi, lo


def philox4x32_10(
    c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor, k0: int, k1: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random123's Philox4x32-10 on int64 tensors holding unsigned 32-bit counter words."""
    for r in range(PHILOX_ROUNDS):
        if r:
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        hi0, lo0 = _mulhilo32(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo32(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def _split64(v: int) -> tuple[int, int]:
    v &= (1 << 64) - 1
    return v & MASK32, v >> 32


def raw_bits(index: torch.Tensor, key: int, seed: int) -> torch.Tensor:
    """The 32-bit stream word of each global element index (int64 tensor, values >= 0)."""
    q = index >> 2
    lane = index & 3
    t0, t1 = _split64(key)
    k0, k1 = _split64(seed)
    zeros = torch.zeros_like(q)
    out = philox4x32_10(q & MASK32, q >> 32, zeros + t0, zeros + t1, k0, k1)
    words = torch.stack(out, dim=-1)
    return words.gather(-1, lane.unsqueeze(-1)).squeeze(-1)


def raw_bits_range(start: int, count: int, key: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Stream words of the global indices ``start .. start+count-1``: one Philox call per four of them."""
    if count <= 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    q_first = start >> 2
    q_last = (start + count - 1) >> 2
    q = torch.arange(q_first, q_last + 1, dtype=torch.int64, device=device)
    t0, t1 = _split64(key)
    k0, k1 = _split64(seed)
    zeros = torch.zeros_like(q)
    out = torch.stack(philox4x32_10(q & MASK32, q >> 32, zeros + t0, zeros + t1, k0, k1), dim=-1).reshape(-1)
    skip = start - (q_first << 2)
    return out[skip : skip + count]


def symmetric_uniform(bits: torch.Tensor) -> torch.Tensor:
    """s = 2u - 1 in float32, exactly, where u = ((bits >> 9) + 0.5) * 2^-23 is the stream's uniform.

    s is an odd multiple of 2^-23 in (-1, 1), so it is exact in float32 and symmetric about 0.
    """
    m = bits >> 9
    return ((m * 2 + 1) - (1 << 23)).to(torch.float32) * TWO_POW_M23


def uniform01(bits: torch.Tensor) -> torch.Tensor:
    """u = ((bits >> 9) + 0.5) * 2^-23, exact in float32, strictly inside (0, 1)."""
    return ((bits >> 9).to(torch.float32) + 0.5) * TWO_POW_M23


def _horner(coeffs: tuple[float, ...], x: torch.Tensor) -> torch.Tensor:
    p = torch.full_like(x, coeffs[0])
    for c in coeffs[1:]:
        p = p * x
        p = p + c
    return p


def log_f32(y: torch.Tensor) -> torch.Tensor:
    """Natural log of positive normal float32 values as an explicit float32 sequence (docs/STREAM.md)."""
    bits = y.view(torch.int32)
    e = (bits >> 23) - 127
    m = ((bits & 0x7FFFFF) | 0x3F800000).view(torch.float32)
    big = m > SQRT2
    m = torch.where(big, m * 0.5, m)
    e = torch.where(big, e + 1, e)
    ef = e.to(torch.float32)
    f = m - 1.0
    z = f * f
    r = _horner(LOG_P, f)
    r = r * f
    r = r * z
    r = r + ef * LN2_LO
    r = r - z * 0.5
    r = f + r
    r = r + ef * LN2_HI
    return r


def erfinv_f32(x: torch.Tensor) -> torch.Tensor:
    """Giles' single-precision erfinv of float32 ``x`` in (-1, 1), as an explicit float32 sequence."""
    t = (1.0 - x) * (1.0 + x)
    w = -log_f32(t)
    central = _horner(ERFINV_CENTRAL, w - 2.5)
    # torch.sqrt on float32 CPU tensors is not always correctly rounded; via float64 it is.
    tail = _horner(ERFINV_TAIL, torch.sqrt(w.double()).float() - 3.0)
    p = torch.where(w < 5.0, central, tail)
    return p * x


def normal_z(s: torch.Tensor, c: float, h: float) -> torch.Tensor:
    """float32 standard-normal value z of each symmetric uniform ``s`` for the float32 map (c, h) into (-1, 1)."""
    x = s * h
    x = x + c
    x = torch.clamp(x, -X_MAX, X_MAX)
    return erfinv_f32(x) * SQRT2


def transform(kind: int, s: torch.Tensor, p: list[float], out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Value of each element from its symmetric uniform ``s`` (kinds UNIFORM and NORMAL), stream contract v2.

    ``p`` is a params row written for ``out_dtype`` (fastinit.tables.build_tables). For float32, bfloat16 and
    float16 outputs the result is float32 (rounded to the output dtype by the caller); for float64 outputs it
    is float64, the uniform and the normal's scale, shift and clamp computed in double.
    """
    c, h, mean, std, lo, hi = p
    if kind == KIND_UNIFORM:
        if out_dtype == torch.float64:
            v = s.double() * h
        else:
            v = s * h
        v = v + c
        return torch.clamp(v, min=lo, max=hi)
    if kind == KIND_NORMAL:
        z = normal_z(s, c, h)
        v = z.double() * std if out_dtype == torch.float64 else z * std
        v = v + mean
        return torch.clamp(v, min=lo, max=hi)
    raise ValueError(f"kind {kind} is not a random kind")
