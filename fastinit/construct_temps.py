"""Temporaries initialized inside constructors under ``empty_init``, then copied into a parameter.

megatron-core's CPU init builds a master weight (``torch.empty`` + ``init_method``), casts it,
concatenates its partition and ``copy_``-s that into the parameter. Run eagerly that is torch's RNG
on a full-size CPU tensor. Here a random init of a plain tensor (no parameter, no view) is held
back as a *pending* spec; value-preserving steps (``clone``, ``contiguous``, ``to``/``float``/...
casts, ``to_dense``, ``cat`` of the one whole tensor) hand the spec on to their result (a spec's
values are float32 rounded to the dtype, so a cast changes nothing), and a whole copy into a
parameter of the same shape gives the parameter the spec itself: fused, keyed by its own name.

Anything else that reads a pending temporary (a slice, arithmetic, ``.item()`` through a tensor
op) first writes it eagerly with torch's own init, as eager code would have, and so does the end
of the ``empty_init`` block for every pending temporary still alive: nothing is left unwritten.
Such a temporary is marked (:func:`mark_torch_rng`): its values follow ``torch.manual_seed``, so a
parameter written from it is re-initialized by ``materialize`` where it can be, or warned about.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch

from . import specs as S
from .intercept import PRISTINE as _TORCH_INIT

# Calls that only make views (their results share the temporary's memory, so reads of them are still seen)
VIEWS = {torch.split, torch.chunk, torch.unbind, torch.functional.split, torch.Tensor.split_with_sizes,
         torch.Tensor.tensor_split, torch.tensor_split, torch.Tensor.as_strided, torch.Tensor.movedim}
_ALIASES = {torch.Tensor.clone, torch.Tensor.contiguous, torch.Tensor.to, torch.Tensor.float, torch.Tensor.double,
            torch.Tensor.half, torch.Tensor.bfloat16, torch.Tensor.type, torch.Tensor.to_dense, torch.cat,
            torch.concat, torch.concatenate}


#: set on real tensors whose values came from torch's RNG while a constructor was recorded
TORCH_RNG_MARK = "_fastinit_torch_rng"


def mark_torch_rng(t: torch.Tensor) -> None:
    """Note that ``t``'s values were drawn from torch's RNG (not reproducible from fastinit's seed)."""
    if not t.is_meta:
        try:
            setattr(t, TORCH_RNG_MARK, True)
        except (AttributeError, TypeError):  # a tensor subclass without a __dict__
            pass


def from_torch_rng(t: torch.Tensor) -> bool:
    """Whether ``t`` (or the tensor it views) holds values drawn from torch's RNG (see :func:`mark_torch_rng`)."""
    return bool(getattr(t, TORCH_RNG_MARK, False) or (t._base is not None and getattr(t._base, TORCH_RNG_MARK, False)))


@dataclass(eq=False)
class Pending:
    """A temporary's held-back init."""

    ref: weakref.ref
    spec: S.Spec
    run: object  # the torch function that writes it eagerly (torch_name's original)
    others: list = field(default_factory=list)  # weak refs to other tensor objects over the whole memory

    def base(self) -> torch.Tensor | None:
        """A live tensor object over the whole temporary (None once every one has died)."""
        for r in (self.ref, *self.others):
            t = r()
            if t is not None:
                return t
        return None


def eligible(t: object) -> bool:
    """Plain real floating tensors that are their own base: what a temporary is."""
    return (isinstance(t, torch.Tensor) and type(t) is torch.Tensor and not t.is_meta and t._base is None
            and t.is_floating_point() and t.numel() > 0 and t.is_contiguous() and t.storage_offset() == 0)


# Factories whose result is one constant: (value of the positional fill argument, or the constant)
_CONSTANT_FACTORIES = {torch.ones: 1.0, torch.zeros: 0.0, torch.ones_like: 1.0, torch.zeros_like: 0.0,
                       torch.Tensor.new_ones: 1.0, torch.Tensor.new_zeros: 0.0, torch.full: None, torch.full_like: None,
                       torch.Tensor.new_full: None}


def constant_made(func, args: tuple, kwargs: dict) -> float | None:
    """The constant a factory call fills its result with (``torch.ones``, ``torch.full(shape, 0.5)``), else None."""
    if func not in _CONSTANT_FACTORIES:
        return None
    value = _CONSTANT_FACTORIES[func]
    if value is None:
        fill = kwargs.get("fill_value", args[1] if len(args) > 1 else None)
        if not isinstance(fill, (bool, int, float)):
            return None
        value = float(fill)
    return value


class Temporaries:
    """Pending temporaries by storage; weakly held, so a temporary that dies costs nothing."""

    def __init__(self) -> None:
        self.by_storage: dict[int, Pending] = {}

    def _key(self, t: torch.Tensor) -> int:
        return t.untyped_storage()._cdata

    def hold(self, t: torch.Tensor, spec: S.Spec) -> None:
        """Hold back ``spec`` for temporary ``t`` (its values stay as they are until flushed)."""
        self._add(t, spec)

    def _add(self, t: torch.Tensor, spec: S.Spec) -> None:
        key = self._key(t)
        self.by_storage[key] = Pending(weakref.ref(t, lambda r: self._drop(key)), spec, _TORCH_INIT[spec.torch_name])

    def share(self, old: torch.Tensor, new: torch.Tensor) -> None:
        """``new`` (a Parameter made from ``old``, or ``new.data = old``) now holds ``old``'s whole memory too."""
        p, whole = self.pending(old)
        if p is not None and whole and self._key(new) == self._key(old):
            key = self._key(new)
            p.others.append(weakref.ref(new, lambda r: self._drop(key)))

    def take(self, t: torch.Tensor) -> S.Spec | None:
        """The spec of the whole pending temporary ``t`` (which a parameter now owns), no longer pending."""
        p, whole = self.pending(t)
        if p is None or not whole:
            return None
        del self.by_storage[self._key(t)]
        return p.spec

    def _drop(self, key: int) -> None:
        p = self.by_storage.get(key)
        if p is not None and p.base() is None:  # the last tensor object over it died
            del self.by_storage[key]

    def pending(self, t: object) -> tuple[Pending | None, bool]:
        """(the pending temporary ``t`` views, whether ``t`` is that temporary itself)."""
        if not isinstance(t, torch.Tensor) or t.is_meta or t.is_sparse or not self.by_storage:
            return None, False
        p = self.by_storage.get(self._key(t))
        base = p.base() if p is not None else None
        if base is None:
            return None, False
        whole = (t.storage_offset() == base.storage_offset() and tuple(t.shape) == tuple(base.shape)
                 and tuple(t.stride()) == tuple(base.stride()))
        return p, whole

    def drop_view(self, t: torch.Tensor) -> None:
        """Forget the temporary ``t`` is a part of (something wrote into it)."""
        if self.pending(t)[0] is not None:
            del self.by_storage[self._key(t)]

    def alias(self, func, args: tuple, kwargs: dict, out: object) -> bool:
        """After a value-preserving ``func`` on a whole pending temporary: hand its spec to ``out``."""
        if func not in _ALIASES or not isinstance(out, torch.Tensor) or not eligible(out):
            return False
        src = args[0] if args else None
        if func in (torch.cat, torch.concat, torch.concatenate):
            if not (isinstance(src, (list, tuple)) and len(src) == 1):
                return False
            src = src[0]
        p, whole = self.pending(src)
        if p is None or not whole or tuple(out.shape) != tuple(src.shape):
            return False
        if self._key(out) != self._key(src):
            self._add(out, p.spec)
        return True

    def flush(self, t: torch.Tensor) -> None:
        """Write the pending temporary ``t`` views now, with torch's own init (what eager code did)."""
        p = self.by_storage.pop(self._key(t), None)
        base = p.base() if p is not None else None
        if base is not None:
            kwargs = p.spec.torch_args()
            with torch.no_grad():
                p.run(base, **kwargs)
            for r in (p.ref, *p.others):
                t = r()
                if t is not None:
                    mark_torch_rng(t)

    def flush_all(self) -> None:
        """Write every pending temporary still alive (the end of the block)."""
        for key in list(self.by_storage):
            p = self.by_storage.get(key)
            base = p.base() if p is not None else None
            if base is not None:
                self.flush(base)
