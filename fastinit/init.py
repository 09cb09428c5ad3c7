"""Drop-ins for every ``torch.nn.init`` function, with values from the fastinit stream.

Same names, signatures, fans, gains, exceptions and warnings as ``torch.nn.init``, plus
keyword-only ``seed=`` (None: drawn from ``generator`` or torch's default generator),
``key=`` (the tensor's 64-bit stream key, default 0) and ``backend=`` (default ``"auto"``).
``orthogonal_`` and ``sparse_`` have no fused form: they run through torch with a generator
seeded deterministically from (seed, key).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import specs as S
from .keys import draw_seed
from .plan import Plan
from .sharding import entries_for

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
]

calculate_gain = S.calculate_gain


def run_spec(tensor: Tensor, spec: S.Spec, *, seed: int | None, key: int, generator: torch.Generator | None = None,
             backend: str = "auto", name: str = "") -> Tensor:
    """Write ``spec`` into ``tensor`` (one-entry plan) and return it; a meta tensor is left alone, as torch does."""
    S.resolve_spec(spec, tuple(tensor.shape))  # argument errors first, as torch raises them (validate reuses it)
    if tensor.is_meta:
        return tensor
    if seed is None:
        seed = draw_seed(generator)
    Plan(entries_for(name, tensor, spec, key)).execute(seed, backend)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None, *,
             seed: int | None = None, key: int = 0, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from U(a, b); ``torch.nn.init.uniform_``."""
    return run_spec(tensor, S.Uniform(a, b), seed=seed, key=key, generator=generator, backend=backend)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None, *,
            seed: int | None = None, key: int = 0, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from N(mean, std²); ``torch.nn.init.normal_``."""
    return run_spec(tensor, S.Normal(mean, std), seed=seed, key=key, generator=generator, backend=backend)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: torch.Generator | None = None, *, seed: int | None = None, key: int = 0,
                  backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from N(mean, std²) truncated to [a, b]; ``torch.nn.init.trunc_normal_``.

    Exact truncation by inverse CDF: no rejection loop, every value inside [a, b].
    """
    spec = S.TruncNormal(mean, std, a, b)
    S.warn_like_torch(spec, tuple(tensor.shape), stacklevel=2)
    return run_spec(tensor, spec, seed=seed, key=key, generator=generator, backend=backend)


def constant_(tensor: Tensor, val: float, *, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` with ``val``; ``torch.nn.init.constant_``."""
    return run_spec(tensor, S.Constant(val), seed=0, key=0, backend=backend)


def ones_(tensor: Tensor, *, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` with 1; ``torch.nn.init.ones_``."""
    return run_spec(tensor, S.Constant(1.0), seed=0, key=0, backend=backend)


def zeros_(tensor: Tensor, *, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` with 0; ``torch.nn.init.zeros_``."""
    return run_spec(tensor, S.Constant(0.0), seed=0, key=0, backend=backend)


def eye_(tensor: Tensor, *, backend: str = "auto") -> Tensor:
    """Fill a 2-D ``tensor`` with the identity matrix; ``torch.nn.init.eye_``."""
    return run_spec(tensor, S.Eye(), seed=0, key=0, backend=backend)


def dirac_(tensor: Tensor, groups: int = 1, *, backend: str = "auto") -> Tensor:
    """Fill a {3, 4, 5}-D ``tensor`` with the Dirac delta; ``torch.nn.init.dirac_``."""
    return run_spec(tensor, S.Dirac(groups), seed=0, key=0, backend=backend)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None, *,
                    seed: int | None = None, key: int = 0, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from U(-a, a), a = gain·√(6/(fan_in+fan_out)); ``torch.nn.init.xavier_uniform_``."""
    return run_spec(tensor, S.XavierUniform(gain), seed=seed, key=key, generator=generator, backend=backend)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None, *,
                   seed: int | None = None, key: int = 0, backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from N(0, std²), std = gain·√(2/(fan_in+fan_out)); ``torch.nn.init.xavier_normal_``."""
    return run_spec(tensor, S.XavierNormal(gain), seed=seed, key=key, generator=generator, backend=backend)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: torch.Generator | None = None, *, seed: int | None = None, key: int = 0,
                     backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from U(-b, b), b = gain·√(3/fan); ``torch.nn.init.kaiming_uniform_``."""
    spec = S.KaimingUniform(a, mode, nonlinearity)
    if S.warn_like_torch(spec, tuple(tensor.shape), stacklevel=2):
        return tensor
    return run_spec(tensor, spec, seed=seed, key=key, generator=generator, backend=backend)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: torch.Generator | None = None, *, seed: int | None = None, key: int = 0,
                    backend: str = "auto") -> Tensor:
    """Fill ``tensor`` from N(0, std²), std = gain/√fan; ``torch.nn.init.kaiming_normal_``."""
    spec = S.KaimingNormal(a, mode, nonlinearity)
    if S.warn_like_torch(spec, tuple(tensor.shape), stacklevel=2):
        return tensor
    return run_spec(tensor, spec, seed=seed, key=key, generator=generator, backend=backend)


def orthogonal_(tensor: Tensor, gain: float = 1, generator: torch.Generator | None = None, *,
                seed: int | None = None, key: int = 0) -> Tensor:
    """Fill ``tensor`` with a (semi-)orthogonal matrix; ``torch.nn.init.orthogonal_`` (runs through torch)."""
    return run_spec(tensor, S.Orthogonal(gain), seed=seed, key=key, generator=generator)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator: torch.Generator | None = None, *,
            seed: int | None = None, key: int = 0) -> Tensor:
    """Fill a 2-D ``tensor`` as a sparse N(0, std²) matrix; ``torch.nn.init.sparse_`` (runs through torch)."""
    return run_spec(tensor, S.Sparse(sparsity, std), seed=seed, key=key, generator=generator)
