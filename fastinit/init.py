"""Drop-ins for every ``torch.nn.init`` function, with values from the fastinit stream.

Same names, signatures, fans, gains, exceptions and warnings as ``torch.nn.init``, plus
keyword-only ``seed=`` (None: drawn from ``generator`` or torch's default generator),
``key=`` (the tensor's 64-bit stream key, default 0) and ``backend=`` (default ``"auto"``).
``orthogonal_`` and ``sparse_`` have no fused form: they run through torch with a generator
seeded deterministically from (seed, key).
"""

from __future__ import annotations

import sys
import warnings

import torch
from torch import Tensor

from . import specs as S
from .plan import Plan
from .sharding import entries_for
from .torch_warnings import run_as_called_from

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
    # deprecated aliases, as in torch.nn.init
    "uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal", "kaiming_uniform",
    "kaiming_normal", "orthogonal", "sparse",
]

calculate_gain = S.calculate_gain


def _torch_itself(tensor: object) -> bool:
    """Whether torch's own function is the whole answer: no memory to fill (meta), a layout fastinit does not
    write (sparse), or no tensor at all. torch then raises, warns, bumps versions and returns exactly as it does."""
    return not isinstance(tensor, Tensor) or tensor.is_meta or tensor.layout != torch.strided


def _as_torch(fn_name: str, *args, **kwargs):
    """``torch.nn.init.<fn_name>(*args, **kwargs)`` as if the caller of fastinit.init's function called it: its
    warnings point where they would (no catching and re-emitting, which loses a warning torch emits before it
    raises and is not thread-safe)."""
    return run_as_called_from(sys._getframe(2), getattr(torch.nn.init, fn_name), *args, **kwargs)


def run_spec(tensor: Tensor, spec: S.Spec, *, seed: int | None, key: int, generator: torch.Generator | None = None,
             backend: str = "auto", name: str = "") -> Tensor:
    """Write ``spec`` into ``tensor`` (one-entry plan) and return it.

    Every check torch makes comes first (the plan's validation), then the seed is drawn (``seed`` None), so a
    refused call leaves ``generator`` and torch's global RNG untouched, then the one write, which bumps
    ``tensor._version`` as torch's in-place ops would.
    """
    Plan(entries_for(name, tensor, spec, key)).execute(seed, backend, generator=generator)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None, *,
             seed: int | None = None, key: int = 0, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from U(a, b); ``torch.nn.init.uniform_``."""
    if _torch_itself(tensor):
        return _as_torch("uniform_", tensor, a, b, generator)
    return run_spec(tensor, S.Uniform(a, b), seed=seed, key=key, generator=generator, backend=backend)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None, *,
            seed: int | None = None, key: int = 0, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from N(mean, std²); ``torch.nn.init.normal_``."""
    if _torch_itself(tensor):
        return _as_torch("normal_", tensor, mean, std, generator)
    return run_spec(tensor, S.Normal(mean, std), seed=seed, key=key, generator=generator, backend=backend)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: torch.Generator | None = None, *, seed: int | None = None, key: int = 0,
                  backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from N(mean, std²) truncated to [a, b]; ``torch.nn.init.trunc_normal_``.

    Exact truncation by inverse CDF: no rejection loop, every value inside [a, b].
    """
    if _torch_itself(tensor):
        return _as_torch("trunc_normal_", tensor, mean, std, a, b, generator)
    spec = S.TruncNormal(mean, std, a, b)
    S.warn_like_torch(spec, tuple(tensor.shape), stacklevel=2)
    return run_spec(tensor, spec, seed=seed, key=key, generator=generator, backend=backend)


def constant_(tensor: Tensor, val: float, *, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` with ``val``; ``torch.nn.init.constant_``."""
    if _torch_itself(tensor):
        return _as_torch("constant_", tensor, val)
    return run_spec(tensor, S.Constant(val), seed=0, key=0, backend=backend)


def ones_(tensor: Tensor, *, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` with 1; ``torch.nn.init.ones_``."""
    if _torch_itself(tensor):
        return _as_torch("ones_", tensor)
    return run_spec(tensor, S.Constant(1.0), seed=0, key=0, backend=backend)


def zeros_(tensor: Tensor, *, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` with 0; ``torch.nn.init.zeros_``."""
    if _torch_itself(tensor):
        return _as_torch("zeros_", tensor)
    return run_spec(tensor, S.Constant(0.0), seed=0, key=0, backend=backend)


def eye_(tensor: Tensor, *, backend: str = "auto") -> Tensor:
    """Fill a 2-D ``tensor`` with the identity matrix; ``torch.nn.init.eye_``."""
    if _torch_itself(tensor):
        return _as_torch("eye_", tensor)
    return run_spec(tensor, S.Eye(), seed=0, key=0, backend=backend)


def dirac_(tensor: Tensor, groups: int = 1, *, backend: str = "auto") -> Tensor:
    """Fill a {3, 4, 5}-D ``tensor`` with the Dirac delta; ``torch.nn.init.dirac_``."""
    if _torch_itself(tensor):
        return _as_torch("dirac_", tensor, groups)
    return run_spec(tensor, S.Dirac(groups), seed=0, key=0, backend=backend)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None, *,
                    seed: int | None = None, key: int = 0, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from U(-a, a), a = gain·√(6/(fan_in+fan_out)); ``torch.nn.init.xavier_uniform_``."""
    if _torch_itself(tensor):
        return _as_torch("xavier_uniform_", tensor, gain, generator)
    return run_spec(tensor, S.XavierUniform(gain), seed=seed, key=key, generator=generator, backend=backend)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None, *,
                   seed: int | None = None, key: int = 0, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from N(0, std²), std = gain·√(2/(fan_in+fan_out)); ``torch.nn.init.xavier_normal_``."""
    if _torch_itself(tensor):
        return _as_torch("xavier_normal_", tensor, gain, generator)
    return run_spec(tensor, S.XavierNormal(gain), seed=seed, key=key, generator=generator, backend=backend)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: torch.Generator | None = None, *, seed: int | None = None, key: int = 0,
                     backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from U(-b, b), b = gain·√(3/fan); ``torch.nn.init.kaiming_uniform_``."""
    if _torch_itself(tensor):
        return _as_torch("kaiming_uniform_", tensor, a, mode, nonlinearity, generator)
    spec = S.KaimingUniform(a, mode, nonlinearity)
    if S.warn_like_torch(spec, tuple(tensor.shape), stacklevel=2):
        return tensor
    return run_spec(tensor, spec, seed=seed, key=key, generator=generator, backend=backend)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: torch.Generator | None = None, *, seed: int | None = None, key: int = 0,
                    backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from N(0, std²), std = gain/√fan; ``torch.nn.init.kaiming_normal_``."""
    if _torch_itself(tensor):
        return _as_torch("kaiming_normal_", tensor, a, mode, nonlinearity, generator)
    spec = S.KaimingNormal(a, mode, nonlinearity)
    if S.warn_like_torch(spec, tuple(tensor.shape), stacklevel=2):
        return tensor
    return run_spec(tensor, spec, seed=seed, key=key, generator=generator, backend=backend)


def orthogonal_(tensor: Tensor, gain: float = 1, generator: torch.Generator | None = None, *,
                seed: int | None = None, key: int = 0) -> Tensor:
    """Fill ``tensor`` with a (semi-)orthogonal matrix; ``torch.nn.init.orthogonal_`` (runs through torch)."""
    if _torch_itself(tensor):
        return _as_torch("orthogonal_", tensor, gain, generator)
    return run_spec(tensor, S.Orthogonal(gain), seed=seed, key=key, generator=generator)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator: torch.Generator | None = None, *,
            seed: int | None = None, key: int = 0) -> Tensor:
    """Fill a 2-D ``tensor`` as a sparse N(0, std²) matrix; ``torch.nn.init.sparse_`` (runs through torch)."""
    if _torch_itself(tensor):
        return _as_torch("sparse_", tensor, sparsity, std, generator)
    return run_spec(tensor, S.Sparse(sparsity, std), seed=seed, key=key, generator=generator)


def _deprecated(fn):
    """``fn`` under its old name (``normal`` for ``normal_``), with torch's FutureWarning; ``torch.nn.init.<old>``."""
    new_name = fn.__name__
    old_name = new_name[:-1]

    def deprecated_init(*args, **kwargs):
        warnings.warn(f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.", FutureWarning,
                      stacklevel=2)
        return fn(*args, **kwargs)

    deprecated_init.__name__ = deprecated_init.__qualname__ = old_name
    deprecated_init.__doc__ = f"""{old_name}(...): deprecated, as in torch; use :func:`fastinit.init.{new_name}`."""
    return deprecated_init


# torch.nn.init's deprecated aliases (for backward compatibility, as torch keeps them)
uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)
