"""Distributions as small spec objects, resolved to kernel numbers for a tensor's (global) shape.

Each spec mirrors one ``torch.nn.init`` function: the same fan, gain and bound arithmetic in
Python double, the same exceptions for bad arguments. ``resolve(shape)`` gives the numbers a
fused kernel needs (``fastinit.tables.Resolved``); specs with no fused form (``Orthogonal``,
``Sparse``) resolve to None and run through torch with a generator seeded from (seed, key).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .stream import KIND_CONSTANT, KIND_DIRAC, KIND_NORMAL, KIND_UNIFORM
from .tables import PARAM_COLS, Resolved

_INF = float("inf")


def f32(x: float) -> float:
    """``x`` rounded to the nearest float32 (as a Python float)."""
    return float(np.float32(x))


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity``; ``torch.nn.init.calculate_gain``."""
    return torch.nn.init.calculate_gain(nonlinearity, param)


def calculate_fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``, as ``torch.nn.init._calculate_fan_in_and_fan_out``."""
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field_size = 1
    for s in shape[2:]:
        receptive_field_size *= s
    return shape[1] * receptive_field_size, shape[0] * receptive_field_size


def calculate_correct_fan(shape: tuple[int, ...], mode: str) -> int:
    """The fan for ``mode`` ('fan_in' or 'fan_out'), as ``torch.nn.init._calculate_correct_fan``."""
    mode = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


_F32_MAX = float(np.finfo(np.float32).max)


def _cache_key(spec: Spec, shape: tuple[int, ...]) -> tuple:
    # Float fields by value *and* sign: -0.0 == 0.0, but Constant(-0.0) writes other bits than Constant(0.0).
    fields = tuple((v, math.copysign(1.0, v)) if isinstance(v, float) else v for v in spec.__dict__.values())
    return type(spec), fields, shape


_RESOLVED: dict[tuple, Resolved | None] = {}
_RESOLVED_MAX = 4096


def resolve_spec(spec: Spec, shape: tuple[int, ...]) -> Resolved | None:
    """``spec.resolve(shape)``, memoized: a model repeats the same (spec, shape) in every layer."""
    try:
        key = _cache_key(spec, shape)
        hit = _RESOLVED.get(key, _RESOLVED)
    except TypeError:  # an unhashable field
        return spec.resolve(shape)
    if hit is not _RESOLVED:
        return hit
    out = spec.resolve(shape)  # errors are raised every time, never cached
    if len(_RESOLVED) >= _RESOLVED_MAX:
        _RESOLVED.clear()
    _RESOLVED[key] = out
    return out


def warn_like_torch(spec: Spec, shape: tuple[int, ...], stacklevel: int) -> bool:
    """Emit the warnings ``torch.nn.init`` emits for this call; True when torch returns without writing.

    ``stacklevel`` counts from the caller of this function, as ``warnings.warn``'s does from its caller.
    """
    if isinstance(spec, (KaimingUniform, KaimingNormal)) and 0 in shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=stacklevel + 1)
        return True
    if isinstance(spec, TruncNormal) and (spec.mean < spec.a - 2 * spec.std or spec.mean > spec.b + 2 * spec.std):
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=stacklevel + 1)
    return False


def _uniform(a: float, b: float) -> Resolved:
    for name, v in (("from", a), ("to", b)):
        if not (-_F32_MAX <= v <= _F32_MAX):  # NaN fails too, as torch's check_uniform_bounds
            raise RuntimeError(f"{name} is out of bounds for float")
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a:g} > to={b:g}")
    # exact doubles; build_tables rounds them for the group's dtype (stream contract v2)
    return Resolved(KIND_UNIFORM, ((a + b) / 2, (b - a) / 2, 0.0, 0.0, float(a), float(b)))


def _normal(mean: float, std: float, c: float = 0.0, h: float = 1.0, lo: float = -_INF, hi: float = _INF) -> Resolved:
    if not std >= 0:  # NaN too, as torch
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
    return Resolved(KIND_NORMAL, (float(c), float(h), float(mean), float(std), float(lo), float(hi)))


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


class Spec:
    """A distribution for one tensor. Subclasses are frozen dataclasses."""

    #: the ``torch.nn.init`` function this spec stands for
    torch_name: str = ""

    def resolve(self, shape: tuple[int, ...]) -> Resolved | None:
        """Kernel numbers for a tensor of global ``shape``; None when there is no fused form."""
        raise NotImplementedError

    def torch_args(self) -> dict:
        """Keyword arguments of the equivalent ``torch.nn.init`` call."""
        return dict(self.__dict__)

    def run_torch(self, tensor: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Run the equivalent ``torch.nn.init`` function on ``tensor`` with torch's own RNG."""
        fn = getattr(torch.nn.init, self.torch_name)
        kwargs = self.torch_args()
        if self.torch_name not in ("constant_", "eye_", "dirac_", "zeros_", "ones_"):
            kwargs["generator"] = generator
        fn(tensor, **kwargs)


@dataclass(frozen=True)
class Uniform(Spec):
    """U(a, b); ``torch.nn.init.uniform_``."""

    a: float = 0.0
    b: float = 1.0
    torch_name = "uniform_"

    def resolve(self, shape):
        return _uniform(self.a, self.b)


@dataclass(frozen=True)
class Normal(Spec):
    """N(mean, std²); ``torch.nn.init.normal_``."""

    mean: float = 0.0
    std: float = 1.0
    torch_name = "normal_"

    def resolve(self, shape):
        return _normal(self.mean, self.std)


def _norm_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


@dataclass(frozen=True)
class TruncNormal(Spec):
    """N(mean, std²) truncated to [a, b] (by inverse CDF, no rejection); ``torch.nn.init.trunc_normal_``."""

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0
    torch_name = "trunc_normal_"

    def resolve(self, shape):
        # std 0 divides by zero here, as in torch; a negative or NaN std is refused by _normal
        lo_cdf = _norm_cdf((self.a - self.mean) / self.std)
        hi_cdf = _norm_cdf((self.b - self.mean) / self.std)
        return _normal(self.mean, self.std, lo_cdf + hi_cdf - 1.0, hi_cdf - lo_cdf, self.a, self.b)


@dataclass(frozen=True)
class Constant(Spec):
    """Every element ``val``; ``torch.nn.init.constant_`` (``zeros_``/``ones_`` are Constant(0)/(1))."""

    val: float = 0.0
    torch_name = "constant_"

    def resolve(self, shape):
        return Resolved(KIND_CONSTANT, (float(self.val),) + (0.0,) * (PARAM_COLS - 1))


@dataclass(frozen=True)
class Eye(Spec):
    """The identity matrix; ``torch.nn.init.eye_``."""

    torch_name = "eye_"

    def resolve(self, shape):
        if len(shape) != 2:
            raise ValueError("Only tensors with 2 dimensions are supported")
        rows, cols = shape
        return Resolved(KIND_DIRAC, iparams=(max(cols, 1), 1, max(rows, 1), 0))


@dataclass(frozen=True)
class Dirac(Spec):
    """The Dirac delta of convolution weights; ``torch.nn.init.dirac_``."""

    groups: int = 1
    torch_name = "dirac_"

    def resolve(self, shape):
        if len(shape) not in (3, 4, 5):
            raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
        if shape[0] % self.groups != 0:
            raise ValueError("dim 0 must be divisible by groups")
        spatial = _numel(shape[2:])
        center = 0
        for size in shape[2:]:
            center = center * size + size // 2
        per_group = shape[0] // self.groups
        return Resolved(KIND_DIRAC, iparams=(max(shape[1] * spatial, 1), max(spatial, 1), max(per_group, 1), center))


@dataclass(frozen=True)
class XavierUniform(Spec):
    """U(-a, a), a = gain·√(6 / (fan_in + fan_out)); ``torch.nn.init.xavier_uniform_``."""

    gain: float = 1.0
    torch_name = "xavier_uniform_"

    def resolve(self, shape):
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
        std = self.gain * math.sqrt(2.0 / float(fan_in + fan_out))
        a = math.sqrt(3.0) * std
        return _uniform(-a, a)


@dataclass(frozen=True)
class XavierNormal(Spec):
    """N(0, std²), std = gain·√(2 / (fan_in + fan_out)); ``torch.nn.init.xavier_normal_``."""

    gain: float = 1.0
    torch_name = "xavier_normal_"

    def resolve(self, shape):
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
        std = self.gain * math.sqrt(2.0 / float(fan_in + fan_out))
        return _normal(0.0, std)


def _kaiming_std(shape: tuple[int, ...], a: float, mode: str, nonlinearity: str) -> float:
    fan = calculate_correct_fan(shape, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan)


@dataclass(frozen=True)
class KaimingUniform(Spec):
    """U(-b, b), b = gain·√(3 / fan); ``torch.nn.init.kaiming_uniform_``."""

    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"
    torch_name = "kaiming_uniform_"

    def resolve(self, shape):
        if 0 in shape:  # torch returns before computing fans
            return Resolved(KIND_CONSTANT)
        bound = math.sqrt(3.0) * _kaiming_std(shape, self.a, self.mode, self.nonlinearity)
        return _uniform(-bound, bound)


@dataclass(frozen=True)
class KaimingNormal(Spec):
    """N(0, std²), std = gain / √fan; ``torch.nn.init.kaiming_normal_``."""

    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"
    torch_name = "kaiming_normal_"

    def resolve(self, shape):
        if 0 in shape:
            return Resolved(KIND_CONSTANT)
        return _normal(0.0, _kaiming_std(shape, self.a, self.mode, self.nonlinearity))


@dataclass(frozen=True)
class Orthogonal(Spec):
    """A (semi-)orthogonal matrix; ``torch.nn.init.orthogonal_`` (no fused form: runs through torch)."""

    gain: float = 1.0
    torch_name = "orthogonal_"

    def resolve(self, shape):
        if len(shape) < 2:
            raise ValueError("Only tensors with 2 or more dimensions are supported")
        return None


@dataclass(frozen=True)
class Sparse(Spec):
    """A sparse N(0, std²) matrix; ``torch.nn.init.sparse_`` (no fused form: runs through torch)."""

    sparsity: float = 0.1
    std: float = 0.01
    torch_name = "sparse_"

    def resolve(self, shape):
        if len(shape) != 2:
            raise ValueError("Only tensors with 2 dimensions are supported")
        return None

    def run_torch(self, tensor, generator=None):
        # torch.nn.init.sparse_ draws its row permutations from the global RNG; fork it so the
        # result depends on the generator alone and the caller's RNG state is untouched.
        seed = (int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
                if generator is not None else None)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            torch.nn.init.sparse_(tensor, self.sparsity, self.std, generator=generator)


#: torch.nn.init function name -> spec class (zeros_/ones_ map to Constant)
BY_TORCH_NAME: dict[str, type[Spec]] = {
    cls.torch_name: cls
    for cls in (Uniform, Normal, TruncNormal, Constant, Eye, Dirac, XavierUniform, XavierNormal,
                KaimingUniform, KaimingNormal, Orthogonal, Sparse)
}
