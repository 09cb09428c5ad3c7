"""Temporaries: tensors the recorded code allocates and initializes itself, given fastinit's stream.

torch 2.13's ``_ConvNd`` initializes a contiguous temporary and copies it into a channels_last weight;
fused qkv weights are built from q/k/v temporaries; ``torch.randn(...)`` makes one. Each is *adopted*
with a key from the module whose init code made it and its order there (never torch's RNG); a whole
same-shape copy of a pending one into a tracked tensor passes the spec on (:meth:`Temporaries._take_over`).
They are held weakly: once the code drops one, nothing can read it, so it is forgotten unwritten.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import torch

from . import specs as S
from .backends.base import FUSED_DTYPES
from .identity import storage_id
from .pending import Pending
from .sharding import is_dtensor

#: random factories: a temporary with this spec instead of torch's RNG (factory -> (spec, allocation))
RANDOM = {torch.randn: (S.Normal(0.0, 1.0), torch.empty), torch.rand: (S.Uniform(0.0, 1.0), torch.empty),
          torch.randn_like: (S.Normal(0.0, 1.0), torch.empty_like),
          torch.rand_like: (S.Uniform(0.0, 1.0), torch.empty_like)}
#: ops that draw from torch's RNG that the recorder has no spec for: warned about (their values follow
#: torch.manual_seed, not fastinit's seed)
TORCH_RNG = {torch.Tensor.random_, torch.Tensor.bernoulli_, torch.Tensor.exponential_, torch.Tensor.cauchy_,
             torch.Tensor.log_normal_, torch.Tensor.geometric_, torch.randint, torch.randint_like, torch.randperm,
             torch.bernoulli, torch.multinomial, torch.poisson, torch.normal}


class Temporary(Pending):
    """A temporary, held weakly: a tensor the code has dropped can never be read, so it need never be written
    (and its memory is not kept alive until the end of the recording)."""

    _ref: weakref.ref | None = None
    _death: Callable[[Pending], None] | None = None

    @property  # type: ignore[override]
    def tensor(self) -> torch.Tensor | None:  # type: ignore[override]
        return self._ref() if self._ref is not None else None

    @tensor.setter
    def tensor(self, t: torch.Tensor) -> None:
        me = weakref.ref(self)

        def dropped(_: weakref.ref) -> None:
            p = me()
            if p is not None and p._death is not None:
                p._death(p)

        self._ref = weakref.ref(t, dropped)

    def on_death(self, fn: Callable[[Pending], None]) -> None:
        """Call ``fn(self)`` when the tensor is freed."""
        self._death = fn


def is_normal_factory(args, kwargs) -> bool:
    """``torch.normal(mean: float, std: float, size, ...)`` (the overload that makes a new tensor from numbers)."""
    names = ("mean", "std")
    values = list(args[:2]) + [kwargs[k] for k in names[len(args[:2]):] if k in kwargs]
    has_size = len(args) > 2 or "size" in kwargs
    return has_size and len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in values)


class Temporaries:
    """The recorder's handling of temporaries (a mixin of :class:`fastinit.record.Recorder`).

    Its state is the recorder's: ``temporaries`` (id -> pending), ``by_storage``, ``scope`` and ``_temp_counts``.
    """

    def _adoptable(self, t) -> bool:
        return (isinstance(t, torch.Tensor) and not t.is_meta and not is_dtensor(t) and not t.is_sparse
                and t.dtype in FUSED_DTYPES and t.layout == torch.strided and not self._in_views(t))

    def _adopt(self, t: torch.Tensor) -> Pending:
        """Track ``t``, a tensor the recorded code allocated itself, as a temporary."""
        n = self._temp_counts.get(self.scope, 0)
        self._temp_counts[self.scope] = n + 1
        name = f"{self.scope}.<temporary {n}>" if self.scope else f"<temporary {n}>"
        p = Temporary(name, t, temporary=True)
        p.on_death(self._forget)
        self.temporaries[id(p)] = p
        self.by_storage[storage_id(t)] = p
        return p

    def _forget(self, p: Pending) -> None:
        """Stop tracking temporary ``p`` (written, installed into a tracked tensor, or dropped by the code)."""
        self.temporaries.pop(id(p), None)
        for sid in [sid for sid, q in self.by_storage.items() if q is p]:
            del self.by_storage[sid]

    def _take_over(self, p: Pending, args, kwargs) -> bool:
        """``tracked.copy_(tmp)`` of a whole pending temporary of the same shape and dtype: ``tracked`` gets its spec.

        The temporary is renamed after the tensor, so should it be read later it holds the same values.
        """
        src = args[1] if len(args) > 1 else kwargs.get("src")
        sp, swhole = self._target(src)
        dst = args[0]
        if sp is None or not sp.temporary or not swhole or sp.spec is None or sp.post_ops or is_dtensor(dst) \
                or tuple(src.shape) != tuple(dst.shape) or src.dtype != dst.dtype or sp is p:
            return False
        p.spec, p.post_ops, p.seed = sp.spec, [], sp.seed
        sp.name = p.name
        return True

    def _warn_torch_rng(self, func) -> None:
        if not self._warned_rng:
            self._warned_rng = True
            owner = "torch.Tensor." if getattr(func, "__objclass__", None) is not None else "torch."
            name = owner + getattr(func, "__name__", str(func))
            warnings.warn(f"fastinit: recorded init code called {name}, which draws from torch's RNG: its values "
                          "follow torch.manual_seed, not fastinit's seed, and are not fused",
                          RuntimeWarning, stacklevel=3)

    def _normal_factory(self, args, kwargs):
        """``torch.normal(mean, std, size)`` with float mean and std: a temporary on fastinit's stream."""
        kw = dict(kwargs)
        generator = kw.pop("generator", None)
        mean, std = (list(args[:2]) + [kw.pop(k) for k in ("mean", "std")[len(args[:2]):]])[:2]
        size = args[2] if len(args) > 2 else kw.pop("size")
        spec = S.Normal(float(mean), float(std))
        S.resolve_spec(spec, tuple(size))  # torch's std check, before anything is allocated
        out = torch.empty(size, **kw)
        if not self._adoptable(out) or kw.get("out") is not None:
            self._warn_torch_rng(torch.normal)
            return torch.normal(*args, **kwargs)
        self._set(self._adopt(out), spec, generator)
        return out

    def _random_factory(self, func, args, kwargs):
        """``torch.randn(...)``/``rand``/``*_like`` inside recorded code: a temporary on fastinit's stream."""
        spec, alloc = RANDOM[func]
        kw = dict(kwargs)
        generator = kw.pop("generator", None)
        self._flush_touching(args, kwargs)
        out = alloc(*args, **kw)
        if not self._adoptable(out) or kw.get("out") is not None:
            return func(*args, **kwargs)
        p = self._adopt(out)
        self._set(p, spec, generator)
        return out
