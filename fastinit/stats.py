"""The statistics ``audit`` runs: one-pass moments, a KS test robust to rounding, moment and extreme-value tests.

Every test returns a p-value under the hypothesis "these values are independent draws from the spec's
distribution, rounded to the tensor's dtype"; ``audit`` compares them with a family-wise threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .describe import Distribution

_CHUNK = 1 << 22
_INT_VIEW = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
             torch.float64: torch.int64}


@dataclass
class Moments:
    """One pass over the values: count, mean, spread about a given centre, range, bad values."""

    n: int = 0
    mean: float = math.nan
    var: float = math.nan  # about the observed mean
    sq_dev: float = math.nan  # mean of (x - centre)^2, centre = the distribution's mean
    min: float = math.nan
    max: float = math.nan
    nonfinite: int = 0
    outside: int = 0  # values below low or above high


def moments(flat: torch.Tensor, centre: float = 0.0, low: float = -math.inf, high: float = math.inf) -> Moments:
    """Moments of a 1-D tensor, in float64 chunks (a billion-element tensor is never copied whole)."""
    n = flat.numel()
    if n == 0:
        return Moments()
    s = s2 = d2 = 0.0
    lo, hi = math.inf, -math.inf
    nonfinite = outside = 0
    for i in range(0, n, _CHUNK):
        x = flat[i:i + _CHUNK].to(torch.float64)
        finite = torch.isfinite(x)
        nonfinite += int((~finite).sum())
        outside += int(((x < low) | (x > high)).sum())
        s += float(x.sum())
        s2 += float((x * x).sum())
        d2 += float(((x - centre) ** 2).sum())
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    mean = s / n
    # the spread about the observed mean from the spread about the centre (no second pass, no cancellation
    # beyond what (mean - centre)^2 loses, which is tiny when the mean is near the centre)
    var = max(d2 / n - (mean - centre) ** 2, 0.0)
    return Moments(n, mean, var, d2 / n, lo, hi, nonfinite, outside)


def _neighbours(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The next representable values below and above each element of ``x`` in its own dtype (as float64).

    16- and 32-bit floats step through their bit patterns (torch.nextafter has no bfloat16/float16 form);
    float64 uses torch.nextafter (its patterns do not fit the int64 arithmetic below).
    """
    if x.dtype == torch.float64:
        return torch.nextafter(x, torch.tensor(-math.inf, dtype=x.dtype)), \
            torch.nextafter(x, torch.tensor(math.inf, dtype=x.dtype))
    ints = x.view(_INT_VIEW[x.dtype]).to(torch.int64)
    bits = {torch.int16: 16, torch.int32: 32, torch.int64: 64}[_INT_VIEW[x.dtype]]
    sign = 1 << (bits - 1)
    mag = ints & (sign - 1)
    order = torch.where(ints < 0, -mag, mag)  # sign-magnitude -> a monotone integer (-0 and +0 both 0)

    def back(o: torch.Tensor) -> torch.Tensor:
        raw = torch.where(o < 0, (-o) | sign, o)
        raw = torch.where(raw >= sign, raw - 2 * sign, raw)  # to the signed range of the int view
        return raw.to(_INT_VIEW[x.dtype]).view(x.dtype).to(torch.float64)

    return back(order - 1), back(order + 1)


def pit(x: torch.Tensor, dist: Distribution, generator: torch.Generator) -> torch.Tensor:
    """Randomized probability integral transform: exactly U(0, 1) if ``x`` are rounded draws from ``dist``.

    A value stands for every real number that rounds to it in its dtype (the interval between the midpoints
    to its neighbours); its PIT is uniform over that interval's CDF mass. Plain ``F(x)`` would be wrong for
    bfloat16/float16 tensors, whose few hundred distinct values per binade make the KS statistic see steps.
    """
    down, up = _neighbours(x)
    xd = x.to(torch.float64)
    f_lo = dist.cdf((xd + down) / 2)
    f_hi = dist.cdf((xd + up) / 2)
    u = torch.rand(x.shape, dtype=torch.float64, generator=generator)
    return f_lo + u * (f_hi - f_lo)


def ks_uniform(u: torch.Tensor) -> tuple[float, float]:
    """(D, p-value) of the one-sample Kolmogorov-Smirnov test of ``u`` against U(0, 1).

    The p-value is scipy's exact ``kstwo`` distribution when scipy is installed, else the asymptotic
    Kolmogorov series with Stephens' small-sample correction (within a few percent for n >= 5).
    """
    n = u.numel()
    u = torch.sort(u.reshape(-1).to(torch.float64)).values
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = max(float((i / n - u).max()), float((u - (i - 1) / n).max()))
    try:
        from scipy.stats import kstwo
    except ImportError:
        lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
        p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
        return d, min(max(p, 0.0), 1.0)
    return d, float(kstwo.sf(d, n))


def two_sided_normal_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def chi2_two_sided_p(stat: float, df: int) -> float:
    """Two-sided p-value of a chi-square(df) statistic (torch's regularized incomplete gamma functions)."""
    s = torch.tensor(stat / 2, dtype=torch.float64)
    a = torch.tensor(df / 2, dtype=torch.float64)
    lower = float(torch.special.gammainc(a, s))
    upper = float(torch.special.gammaincc(a, s))
    return min(1.0, 2 * min(lower, upper))


def extreme_p(zmax: float, n: int) -> float:
    """P(max of n |standard normal| >= zmax): catches a few wild values (uninitialized memory) in a large tensor."""
    tail = math.erfc(zmax / math.sqrt(2.0))  # P(|Z| >= zmax)
    if tail >= 1.0:
        return 1.0
    return -math.expm1(n * math.log1p(-tail))
