"""Recorded calls: a ``torch.nn.init`` call's arguments bound as torch binds them, and the spec it stands for."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import torch

from . import specs as S
from .torch_warnings import caller_stacklevel


def bind(fn: Callable, args: tuple, kwargs: dict) -> dict:
    """Every parameter of ``fn`` for the call ``fn(*args, **kwargs)``, as ``Signature.bind`` + ``apply_defaults``.

    The common call is bound by hand (``Signature.bind`` is a third of the recording time); anything unusual
    goes through ``Signature.bind``, which raises torch's own TypeError for a bad call.
    """
    positional, defaults, names = _binder(fn)
    if names and len(args) <= len(positional) and names.issuperset(kwargs) \
            and not any(n in kwargs for n in positional[:len(args)]):
        a = dict(defaults)
        a.update(zip(positional, args))
        a.update(kwargs)
        if len(a) == len(names):
            return a
    try:
        bound = _signature(fn).bind(*args, **kwargs)
    except TypeError:
        fn(*args, **kwargs)  # Python refuses the call before the body runs, with the function's own message
        raise
    bound.apply_defaults()
    return dict(bound.arguments)


@functools.cache
def _signature(fn: Callable) -> inspect.Signature:
    return inspect.signature(fn)


@functools.cache
def _binder(fn: Callable) -> tuple[tuple[str, ...], dict, frozenset]:
    """(positional names, defaults, all names) of ``fn``, or no names when it takes ``*args``/``**kwargs``."""
    params = _signature(fn).parameters.values()
    if any(p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        return (), {}, frozenset()
    return (tuple(p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD),
            {p.name: p.default for p in params if p.default is not p.empty}, frozenset(p.name for p in params))


def spec_from_call(torch_name: str, original: Callable, tensor, args, kwargs) -> tuple[S.Spec | None, object]:
    """(spec, generator=) of a ``torch.nn.init.<torch_name>(tensor, *args, **kwargs)`` call, with torch's checks and
    warnings; the spec is None when torch would return without writing."""
    a = bind(original, (tensor, *args), kwargs)
    a.pop("tensor", None)
    generator = a.pop("generator", None)
    if generator is not None and not isinstance(generator, torch.Generator):
        original(tensor, *args, **kwargs)  # torch refuses it with its own TypeError before writing
    shape = tuple(tensor.shape)
    if torch_name == "zeros_":
        spec: S.Spec = S.Constant(0.0)
    elif torch_name == "ones_":
        spec = S.Constant(1.0)
    else:
        spec = S.BY_TORCH_NAME[torch_name](**a)
    if S.warn_like_torch(spec, shape, stacklevel=caller_stacklevel()):
        return None, None
    S.resolve_spec(spec, shape)  # argument errors now, where eager code would raise them
    return spec, generator


_FAST_SPECS: dict[tuple, S.Spec] = {}


def fast_spec(torch_name: str, args: tuple) -> S.Spec:
    """The spec of ``torch.nn.init.<torch_name>(t, *args)`` for a call that can neither warn nor fail (a known
    module's, :mod:`fastinit.known_inits`): one shared spec object per distinct call."""
    key = (torch_name, args)  # 0.0 == -0.0 (and 0 == 0.0): zeros also key their sign and type
    if 0 in args:
        key = (torch_name, args, tuple((type(a), math.copysign(1.0, a) if isinstance(a, float) else 0) for a in args))
    spec = _FAST_SPECS.get(key)
    if spec is None:
        if torch_name in ("zeros_", "ones_"):
            spec = S.Constant(0.0 if torch_name == "zeros_" else 1.0)
        else:
            spec = S.BY_TORCH_NAME[torch_name](*args)
        _FAST_SPECS[key] = spec
    return spec
