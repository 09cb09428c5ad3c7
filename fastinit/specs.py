"""Distributions as small spec objects, resolved to kernel numbers for a tensor's (global) shape.

Each spec mirrors one ``torch.nn.init`` function: the same fan, gain and bound arithmetic in
Python double, the same exceptions for bad arguments. ``resolve(shape)`` gives the numbers a
fused kernel needs (``fastinit.tables.Resolved``); specs with no fused form (``Orthogonal``,
``Sparse``) resolve to None and run through torch with a generator seeded from (seed, key).
"""

from __future__ import annotations

import math
import operator
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from . import checks
from .stream import KIND_CONSTANT, KIND_DIRAC, KIND_NORMAL, KIND_UNIFORM
from .tables import PARAM_COLS, Resolved
from .torch_warnings import warn_trunc_normal_far_mean

_INF = float("inf")


def f32(x: float) -> float:
    """``x`` rounded to the nearest float32 (as a Python float; inf past float32's range, without a warning)."""
    with np.errstate(over="ignore"):
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
_F64_MAX = float(np.finfo(np.float64).max)


def cache_key(spec: Spec, shape: tuple[int, ...]) -> tuple:
    """What a spec's resolution depends on: its type, its fields by value and sign, and the shape."""
    # Float fields by value *and* sign: -0.0 == 0.0, but Constant(-0.0) writes other bits than Constant(0.0).
    fields = tuple((v, math.copysign(1.0, v)) if isinstance(v, float) else v for v in spec.__dict__.values())
    return type(spec), fields, shape


_RESOLVED: dict[tuple, Resolved | None] = {}
_RESOLVED_MAX = 4096


_BY_ID: dict[tuple[int, tuple[int, ...]], tuple[Spec, Resolved | None]] = {}


def resolve_spec(spec: Spec, shape: tuple[int, ...]) -> Resolved | None:
    """``spec.resolve(shape)``, memoized: a model repeats the same (spec, shape) in every layer."""
    same = _BY_ID.get((id(spec), shape))
    if same is not None and same[0] is spec:  # the very spec object again (a shared one): no key to build
        return same[1]
    out = _resolve_by_value(spec, shape)
    if len(_BY_ID) >= _RESOLVED_MAX:
        _BY_ID.clear()
    _BY_ID[(id(spec), shape)] = (spec, out)  # holds the spec, so its id is not reused while cached
    return out


def _resolve_by_value(spec: Spec, shape: tuple[int, ...]) -> Resolved | None:
    try:
        key = cache_key(spec, shape)
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
        warn_trunc_normal_far_mean(stacklevel + 1)  # where torch's points: inside its trunc_normal_
    return False


def _uniform(a: float, b: float) -> Resolved:
    for name, v in (("from", a), ("to", b)):
        if not (-_F64_MAX <= v <= _F64_MAX):  # NaN fails too; the dtype's own limits: checks.check_uniform_args
            raise RuntimeError(f"{name} is out of bounds for double")
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a:g} > to={b:g}")
    # exact doubles; build_tables rounds them for the group's dtype (stream contract v2). a + b overflows only
    # for float64 bounds beyond half the double range (b - a cannot: torch refuses that): there the centre
    # is a/2 + b/2, which does not (docs/STREAM.md)
    center = (a + b) / 2 if math.isfinite(a + b) else a / 2 + b / 2
    return Resolved(KIND_UNIFORM, (center, (b - a) / 2, 0.0, 0.0, float(a), float(b)))


def _normal(mean: float, std: float, c: float = 0.0, h: float = 1.0, lo: float = -_INF, hi: float = _INF) -> Resolved:
    if not std >= 0:  # NaN too, as torch
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
    return Resolved(KIND_NORMAL, (float(c), float(h), float(mean), float(std), float(lo), float(hi)))


def _is_index(v: object) -> bool:
    try:
        operator.index(v)
    except TypeError:
        return False
    return True


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


class Spec:
    """A distribution for one tensor. Subclasses are frozen dataclasses."""

    #: the ``torch.nn.init`` function this spec stands for
    torch_name: str = ""

    def resolve(self, shape: tuple[int, ...]) -> Resolved | None:
        """Kernel numbers for a tensor of global ``shape``; None when there is no fused form."""
        raise NotImplementedError

    def check_torch(self, tensor: torch.Tensor, shape: tuple[int, ...], generator: object = None) -> None:
        """Raise what the ``torch.nn.init`` call raises for its arguments and ``tensor``'s dtype and device.

        Runs before ``resolve``: the torch function's own Python checks (fans, dimensions, its arithmetic on the
        arguments) in its order, then the argument checks of the ATen op it ends in, run on a probe
        (``fastinit.checks``), so that wrong types and dtype-dependent bounds raise torch's exceptions.
        """

    def check_late(self, shape: tuple[int, ...]) -> None:
        """Raise what the torch function raises after its first write to the tensor (fastinit: before any)."""

    def dry_run(self, tensor: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Raise what ``run_torch(tensor)`` raises, writing nothing into ``tensor`` (a scratch of its dtype runs)."""
        if checks.shares_elements(tensor):  # a scratch with the same strides: its storage is as small as the view's
            size = 1 + sum((n - 1) * st for n, st in zip(tensor.shape, tensor.stride()) if n > 0)
            scratch = torch.empty(size, dtype=tensor.dtype, device=tensor.device).as_strided(
                tensor.shape, tensor.stride())
        else:  # the checks depend on the number of dimensions and on emptiness, not on sizes
            scratch = torch.empty(tuple(min(n, 2) for n in tensor.shape), dtype=tensor.dtype, device=tensor.device)
        self.run_torch(scratch, generator)

    def version_bumps(self, shape: tuple[int, ...]) -> int:
        """How many in-place ops the ``torch.nn.init`` call runs on the tensor (each bumps ``tensor._version``)."""
        return 1

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

    def check_torch(self, tensor, shape, generator=None):
        checks.check_uniform_args(tensor, self.a, self.b, generator)


@dataclass(frozen=True)
class Normal(Spec):
    """N(mean, std²); ``torch.nn.init.normal_``."""

    mean: float = 0.0
    std: float = 1.0
    torch_name = "normal_"

    def resolve(self, shape):
        return _normal(self.mean, self.std)

    def check_torch(self, tensor, shape, generator=None):
        checks.check_normal_args(tensor, self.mean, self.std, generator)


def _norm_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


_TAIL_LEVELS = 256  # fewest distinct float32 inputs of the inverse CDF over [a, b] that fastinit accepts


def _tail_resolved(res: Resolved) -> bool:
    # The kernel maps u into [c - h, c + h] in float32 and takes erfinv there: far in a tail, c is close to
    # +-1, where float32 has few values, and [a, b] would get only a handful of distinct values, silently.
    c, h = res.params[0], res.params[1]
    edge = np.float32(max(abs(c - h), abs(c + h)))
    return edge == 0 or 2 * h / float(np.spacing(edge)) >= _TAIL_LEVELS


def reference_tail_sample(spec: TruncNormal, shape: tuple[int, ...], generator: torch.Generator | None,
                          device: torch.device | str = "cpu") -> torch.Tensor:
    """float64 samples of N(mean, std²) truncated to [a, b], by inverse CDF in log space (any tail depth).

    The interval is mirrored into the lower half (where Φ is accurate), ``log p = log(Φ(α)(1-u) + Φ(β)u)``
    for u ~ U[0, 1), z = Φ⁻¹(p) from ``ndtri`` (or -√(-2 log p) where p underflows), refined by Newton steps on
    ``log_ndtr(z) = log p``, then mirrored back and clamped to [a, b].
    """
    std = abs(spec.std)
    alpha, beta = (spec.a - spec.mean) / std, (spec.b - spec.mean) / std
    flip = alpha + beta > 0
    if flip:
        alpha, beta = -beta, -alpha
    f64 = {"dtype": torch.float64, "device": device}
    la = float(torch.special.log_ndtr(torch.tensor(alpha, **f64)))
    lb = float(torch.special.log_ndtr(torch.tensor(beta, **f64)))
    u = torch.rand(shape, generator=generator, **f64)
    log_p = lb + torch.log(u + (1 - u) * math.exp(la - lb))
    z = torch.special.ndtri(torch.exp(log_p))
    z = torch.where(torch.isfinite(z) & (log_p > -700.0), z, -torch.sqrt(-2 * log_p))
    for _ in range(6):
        log_cdf = torch.special.log_ndtr(z)
        slope = torch.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - log_cdf)  # d log Φ(z) / dz
        z = torch.where(torch.isfinite(z), z - (log_cdf - log_p) / slope, z)
    z = z.clamp(alpha, beta)
    if flip:
        z = -z
    return (spec.mean + std * z).clamp(spec.a, spec.b)


@dataclass(frozen=True)
class TruncNormal(Spec):
    """N(mean, std²) truncated to [a, b] (by inverse CDF, no rejection); ``torch.nn.init.trunc_normal_``.

    An [a, b] so far in a tail that float32's inverse CDF cannot resolve it has no fused form: it runs through
    torch (its rejection sampler) with a generator seeded from (seed, key), as ``Orthogonal`` does.
    """

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0
    torch_name = "trunc_normal_"

    def resolve(self, shape):
        # std 0 divides by zero here, as in torch
        if not all(math.isfinite(v) for v in (self.mean, self.std)):
            # torch's rejection sampler accepts every U(a, b) candidate when mean or std is NaN or infinite
            # (its log-density is NaN or 0 everywhere): the values are U(a, b), and so are fastinit's.
            return _uniform(self.a, self.b)
        # torch's sampler squares (x - mean) / std: a negative std samples as |std| (torch < 2.12 raised in
        # uniform_ for it; fastinit follows the torch it runs with, checked by check_torch)
        std, a, b, mean = abs(self.std), self.a, self.b, self.mean
        lo_cdf = _norm_cdf((a - mean) / std)
        hi_cdf = _norm_cdf((b - mean) / std)
        if math.isfinite(a) and math.isfinite(b) and (hi_cdf - lo_cdf == 0 or not math.isfinite(f32(std))):
            far = max(abs(a - mean), abs(b - mean)) / std
            near = 0.0 if a <= mean <= b else min(abs(a - mean), abs(b - mean)) / std
            if 0.5 * (far - near) * (far + near) < 2.0**-25:
                # std so huge against b - a that the inverse CDF has nothing to work with (Φ(β) - Φ(α) is 0 in a
                # double, or std overflows float32), and the density is flat to float32's resolution over [a, b]:
                # U(a, b) is the distribution
                return _uniform(a, b)
        res = _normal(mean, std, lo_cdf + hi_cdf - 1.0, hi_cdf - lo_cdf, a, b)
        # far in a tail, no fused form: torch's own rejection sampler runs (as for orthogonal_)
        return res if _tail_resolved(res) else None

    def run_torch(self, tensor, generator=None):
        """The tail case (no fused form): inverse CDF in float64, in log space; no rejection loop.

        torch's rejection sampler can take practically forever there (a wide [a, b] far from the mean accepts
        almost no uniform proposal); this samples the same distribution directly. ``reference_tail_sample``.
        """
        if tensor.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16) or self.resolve(
                tuple(tensor.shape)) is not None:
            return super().run_torch(tensor, generator)  # torch's own (other dtypes: its errors)
        tensor.copy_(reference_tail_sample(self, tuple(tensor.shape), generator, tensor.device))

    def check_torch(self, tensor, shape, generator=None):
        # torch.nn.init._no_grad_trunc_normal_'s flow, up to the first op that can raise
        mean, std, a, b = self.mean, self.std, self.a, self.b
        p = _norm_cdf((b - mean) / std) - _norm_cdf((a - mean) / std)
        if p > 0.3:
            checks.check_new_tensor(tensor, a)  # torch casts the bounds to the dtype first
            checks.check_new_tensor(tensor, b)
            checks.check_normal_args(tensor, mean, std, generator)
        else:
            mode = max(a, min(mean, b))
            -0.5 * ((mode - mean) / std) ** 2  # noqa: B018 -- raises OverflowError where torch's log_peak does
            checks.check_uniform_args(tensor, a, b, generator)


@dataclass(frozen=True)
class Constant(Spec):
    """Every element ``val``; ``torch.nn.init.constant_`` (``zeros_``/``ones_`` are Constant(0)/(1))."""

    val: float = 0.0
    torch_name = "constant_"

    def resolve(self, shape):
        return Resolved(KIND_CONSTANT, (float(self.val),) + (0.0,) * (PARAM_COLS - 1))

    def check_torch(self, tensor, shape, generator=None):
        checks.torch_fill_value(tensor, self.val)  # fill_'s conversion: 1e40 in float32, "1", 2**200 raise

    def resolve_for(self, tensor: torch.Tensor) -> Resolved:
        """``resolve`` with the value converted to ``tensor``'s dtype exactly as ``fill_`` converts it."""
        key = (type(self.val), self.val, math.copysign(1.0, self.val) if isinstance(self.val, float) else 0,
               tensor.dtype, tensor.device.type, min(tensor.numel(), 2))
        try:
            hit = _FILLS.get(key)
        except TypeError:  # an unhashable value: no memo
            key, hit = None, None
        if hit is None:
            value = float(checks.torch_fill_value(tensor, self.val))
            hit = Resolved(KIND_CONSTANT, (value,) + (0.0,) * (PARAM_COLS - 1))
            if key is not None:
                if len(_FILLS) >= 4096:
                    _FILLS.clear()
                _FILLS[key] = hit
        return hit


# (value, its type and sign, dtype, device type, min(numel, 2)) -> the value as fill_ converts it
_FILLS: dict[tuple, Resolved] = {}


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
        per_group, min_dim = self._torch_loop_bounds(shape)
        if not _is_index(self.groups) or per_group <= 0 or min_dim <= 0 or self.groups <= 0:
            return Resolved(KIND_CONSTANT)  # torch's loops do nothing: zeros only (or check_late raises)
        spatial = _numel(shape[2:])
        center = 0
        for size in shape[2:]:
            center = center * size + size // 2
        return Resolved(KIND_DIRAC, iparams=(max(shape[1] * spatial, 1), max(spatial, 1), max(per_group, 1), center))

    def _torch_loop_bounds(self, shape: tuple[int, ...]) -> tuple[int, int]:
        # torch.nn.init.dirac_'s own arithmetic, with its errors: groups 0 divides by zero, a str or a float
        # groups fail in % or in range() (torch raises that only after zeroing the tensor; fastinit before)
        if shape[0] % self.groups != 0:
            raise ValueError("dim 0 must be divisible by groups")
        per_group = shape[0] // self.groups
        return per_group, min(per_group, shape[1])

    def check_late(self, shape):
        # torch's loops, after its zero_() (whose inference / dtype errors come first)
        range(self.groups)
        range(self._torch_loop_bounds(shape)[1])

    def version_bumps(self, shape):
        per_group, min_dim = self._torch_loop_bounds(shape)
        if not _is_index(self.groups):
            return 1
        return 1 + max(self.groups, 0) * max(min_dim, 0)  # zero_(), then one indexed write per diagonal element


@dataclass(frozen=True)
class XavierUniform(Spec):
    """U(-a, a), a = gain·√(6 / (fan_in + fan_out)); ``torch.nn.init.xavier_uniform_``."""

    gain: float = 1.0
    torch_name = "xavier_uniform_"

    def _bound(self, shape):
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
        std = self.gain * math.sqrt(2.0 / float(fan_in + fan_out))
        return math.sqrt(3.0) * std

    def resolve(self, shape):
        a = self._bound(shape)
        return _uniform(-a, a)

    def check_torch(self, tensor, shape, generator=None):
        a = self._bound(shape)
        checks.check_uniform_args(tensor, -a, a, generator)


@dataclass(frozen=True)
class XavierNormal(Spec):
    """N(0, std²), std = gain·√(2 / (fan_in + fan_out)); ``torch.nn.init.xavier_normal_``."""

    gain: float = 1.0
    torch_name = "xavier_normal_"

    def _std(self, shape):
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
        return self.gain * math.sqrt(2.0 / float(fan_in + fan_out))

    def resolve(self, shape):
        return _normal(0.0, self._std(shape))

    def check_torch(self, tensor, shape, generator=None):
        checks.check_normal_args(tensor, 0.0, self._std(shape), generator)


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

    def check_torch(self, tensor, shape, generator=None):
        if 0 not in shape:
            bound = math.sqrt(3.0) * _kaiming_std(shape, self.a, self.mode, self.nonlinearity)
            checks.check_uniform_args(tensor, -bound, bound, generator)

    def version_bumps(self, shape):
        return 0 if 0 in shape else 1


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

    def check_torch(self, tensor, shape, generator=None):
        if 0 not in shape:
            checks.check_normal_args(tensor, 0.0, _kaiming_std(shape, self.a, self.mode, self.nonlinearity), generator)

    def version_bumps(self, shape):
        return 0 if 0 in shape else 1


@dataclass(frozen=True)
class Orthogonal(Spec):
    """A (semi-)orthogonal matrix; ``torch.nn.init.orthogonal_`` (no fused form: runs through torch)."""

    gain: float = 1.0
    torch_name = "orthogonal_"

    def resolve(self, shape):
        if len(shape) < 2:
            raise ValueError("Only tensors with 2 or more dimensions are supported")
        return None

    def check_torch(self, tensor, shape, generator=None):
        self.resolve(shape)  # the dimension check comes first in torch
        if _numel(shape) > 0:
            checks.check_normal_args(tensor, 0, 1, generator)

    def dry_run(self, tensor, generator=None):
        # torch.nn.init.orthogonal_'s steps on a 2 x 2 block, up to each op that can raise, in its order:
        # normal_, qr and sign (dtype errors), view_as of the tensor itself (strided views), mul_(gain)
        if tensor.numel() == 0:
            return
        rows = tensor.shape[0]
        flat = torch.empty((min(rows, 2), min(tensor.numel() // rows, 2)), dtype=tensor.dtype, device=tensor.device)
        q, r = torch.linalg.qr(flat.normal_(0, 1, generator=generator))
        q *= torch.diag(r, 0).sign()
        tensor.detach().view(rows, tensor.numel() // rows)
        checks.check_writable(tensor)  # copy_ into the tensor
        checks.check_no_internal_overlap(tensor)
        torch.empty(1, dtype=tensor.dtype, device=tensor.device).mul_(self.gain)

    def version_bumps(self, shape):
        return 2 if _numel(shape) > 0 else 0  # copy_ then mul_


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

    def check_torch(self, tensor, shape, generator=None):
        self.resolve(shape)  # the dimension check comes first in torch
        math.ceil(self.sparsity * shape[0])  # torch's num_zeros: NaN / inf / wrong types raise here first
        checks.check_normal_args(tensor, 0, self.std, generator)

    def version_bumps(self, shape):
        return 1 + shape[1]  # normal_, then one indexed write per column

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
