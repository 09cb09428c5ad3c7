"""A spec as the distribution it stands for: family, resolved numbers, fans and gain, and its CDF/density.

``explain`` prints these numbers and ``audit`` tests values against them. They are computed here in
Python double from the spec's own fields with torch's arithmetic (``fastinit.specs`` fan and gain
helpers), i.e. the numbers the spec gives before any per-dtype rounding of the kernel tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import specs as S

_INF = math.inf

#: families whose values are random draws (tested statistically by audit)
RANDOM_FAMILIES = ("uniform", "normal", "trunc_normal")
#: families whose values are a pure function of the shape (tested for exact equality)
EXACT_FAMILIES = ("constant", "eye", "dirac")


@dataclass(frozen=True)
class Distribution:
    """What a spec says the values of one tensor of a given (global) shape are."""

    family: str  # uniform, normal, trunc_normal, constant, eye, dirac, orthogonal, sparse, empty
    numbers: dict[str, float] = field(default_factory=dict)  # a/b, mean/std, val, gain, ... as the spec gives them
    fan_in: int | None = None
    fan_out: int | None = None
    gain: float | None = None

    # -- the numbers audit needs ------------------------------------------------------------
    @property
    def bounds(self) -> tuple[float, float]:
        """[low, high] no value may leave (infinite for the normal family)."""
        n = self.numbers
        if self.family == "uniform":
            return n["a"], n["b"]
        if self.family == "trunc_normal":
            return n["a"], n["b"]
        if self.family == "constant":
            return n["val"], n["val"]
        return -_INF, _INF

    def _std_limits(self) -> tuple[float, float]:
        n = self.numbers
        return (n["a"] - n["mean"]) / n["std"], (n["b"] - n["mean"]) / n["std"]

    def mean(self) -> float:
        """The distribution's mean."""
        n = self.numbers
        if self.family == "uniform":
            return (n["a"] + n["b"]) / 2
        if self.family == "normal":
            return n["mean"]
        if self.family == "trunc_normal":
            al, be = self._std_limits()
            z = _phi_cdf(be) - _phi_cdf(al)
            return n["mean"] + n["std"] * (_phi(al) - _phi(be)) / z
        raise ValueError(f"no mean for {self.family}")

    def central_moment(self, k: int) -> float:
        """E[(X - mean)^k] for k = 2 or 4."""
        n = self.numbers
        if self.family == "uniform":
            h = (n["b"] - n["a"]) / 2
            return h ** k / (k + 1)
        if self.family == "normal":
            return n["std"] ** k * (1.0 if k == 2 else 3.0)
        if self.family == "trunc_normal":
            # numerically, on a fine grid of the standardized support: the closed forms lose digits for
            # far-out truncation, the quadrature does not
            al, be = (max(x, -40.0) for x in self._std_limits())
            be = min(be, 40.0)
            z = torch.linspace(al, be, 200_001, dtype=torch.float64)
            w = torch.exp(-z * z / 2)
            w = w / torch.trapezoid(w, z)
            m = torch.trapezoid(w * z, z)
            return float(torch.trapezoid(w * (z - m) ** k, z)) * n["std"] ** k
        raise ValueError(f"no moments for {self.family}")

    def std(self) -> float:
        """The distribution's standard deviation."""
        return math.sqrt(self.central_moment(2))

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """P(X <= x), float64."""
        x = x.double()
        n = self.numbers
        if self.family == "uniform":
            a, b = n["a"], n["b"]
            return ((x - a) / (b - a)).clamp(0.0, 1.0)
        if self.family == "normal":
            return torch.special.ndtr((x - n["mean"]) / n["std"])
        if self.family == "trunc_normal":
            al, be = self._std_limits()
            lo, z = _phi_cdf(al), _phi_cdf(be) - _phi_cdf(al)
            return ((torch.special.ndtr((x - n["mean"]) / n["std"]) - lo) / z).clamp(0.0, 1.0)
        raise ValueError(f"no CDF for {self.family}")

    def pdf(self, x: torch.Tensor) -> torch.Tensor:
        """The density at x, float64 (for the histograms)."""
        x = x.double()
        n = self.numbers
        if self.family == "uniform":
            a, b = n["a"], n["b"]
            return ((x >= a) & (x <= b)).double() / (b - a)
        s = n["std"]
        dens = torch.exp(-0.5 * ((x - n["mean"]) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        if self.family == "normal":
            return dens
        if self.family == "trunc_normal":
            al, be = self._std_limits()
            return torch.where((x >= n["a"]) & (x <= n["b"]), dens / (_phi_cdf(be) - _phi_cdf(al)), 0.0)
        raise ValueError(f"no density for {self.family}")

    def label(self) -> str:
        """'uniform(a=-0.1, b=0.1)'-style text."""
        inner = ", ".join(f"{k}={_num(v)}" for k, v in self.numbers.items())
        return f"{self.family}({inner})"


def _phi(z: float) -> float:
    return 0.0 if math.isinf(z) else math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _phi_cdf(z: float) -> float:
    return (1.0 + math.erf(z / math.sqrt(2.0))) / 2.0


def _num(v: float) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _uniform(a: float, b: float, **fans) -> Distribution:
    if a == b:  # torch writes a everywhere
        return Distribution("constant", {"val": a}, **fans)
    return Distribution("uniform", {"a": a, "b": b}, **fans)


def _normal(mean: float, std: float, **fans) -> Distribution:
    if std == 0:
        return Distribution("constant", {"val": mean}, **fans)
    return Distribution("normal", {"mean": mean, "std": std}, **fans)


def describe(spec: S.Spec, shape: tuple[int, ...]) -> Distribution:
    """The distribution ``spec`` gives a tensor of global ``shape`` (same fans and gains as torch.nn.init)."""
    shape = tuple(shape)
    if isinstance(spec, (S.KaimingUniform, S.KaimingNormal)) and 0 in shape:
        return Distribution("empty")
    if isinstance(spec, S.Uniform):
        return _uniform(float(spec.a), float(spec.b))
    if isinstance(spec, S.Normal):
        return _normal(float(spec.mean), float(spec.std))
    if isinstance(spec, S.TruncNormal):
        n = {"mean": float(spec.mean), "std": float(spec.std), "a": float(spec.a), "b": float(spec.b)}
        return Distribution("trunc_normal", n)
    if isinstance(spec, S.Constant):
        return Distribution("constant", {"val": float(spec.val)})
    if isinstance(spec, S.Eye):
        return Distribution("eye")
    if isinstance(spec, S.Dirac):
        return Distribution("dirac", {"groups": spec.groups})
    if isinstance(spec, (S.XavierUniform, S.XavierNormal)):
        fan_in, fan_out = S.calculate_fan_in_and_fan_out(shape)
        std = spec.gain * math.sqrt(2.0 / float(fan_in + fan_out))
        fans = {"fan_in": fan_in, "fan_out": fan_out, "gain": float(spec.gain)}
        if isinstance(spec, S.XavierUniform):
            return _uniform(-math.sqrt(3.0) * std, math.sqrt(3.0) * std, **fans)
        return _normal(0.0, std, **fans)
    if isinstance(spec, (S.KaimingUniform, S.KaimingNormal)):
        fan_in, fan_out = S.calculate_fan_in_and_fan_out(shape)
        fan = S.calculate_correct_fan(shape, spec.mode)
        gain = S.calculate_gain(spec.nonlinearity, spec.a)
        std = gain / math.sqrt(fan)
        fans = {"fan_in": fan_in, "fan_out": fan_out, "gain": gain}
        if isinstance(spec, S.KaimingUniform):
            return _uniform(-math.sqrt(3.0) * std, math.sqrt(3.0) * std, **fans)
        return _normal(0.0, std, **fans)
    if isinstance(spec, S.Orthogonal):
        return Distribution("orthogonal", {"gain": float(spec.gain)}, gain=float(spec.gain))
    if isinstance(spec, S.Sparse):
        return Distribution("sparse", {"sparsity": float(spec.sparsity), "std": float(spec.std)})
    raise TypeError(f"fastinit.describe does not know the spec {type(spec).__name__}")


def spec_call(spec: S.Spec) -> str:
    """The spec as the torch.nn.init call it stands for: 'kaiming_uniform_(a=2.23607)'."""
    args = ", ".join(f"{k}={_num(v) if isinstance(v, float) else repr(v)}" for k, v in spec.torch_args().items())
    return f"{spec.torch_name}({args})"
