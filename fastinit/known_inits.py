"""What torch's own ``reset_parameters`` records, computed without running it: the default policy's fast path.

Recording a module's init runs its Python code under fastinit's TorchFunctionMode, so every tensor method it
calls (``dim()``, ``size()`` inside the fan computation) and every ``torch.nn.init`` call goes through Python
dispatch: about 30 µs per ``nn.Linear``, three times torch's own loop. For the handful of torch modules that
make up almost every model (Linear, Conv*, LayerNorm, RMSNorm, GroupNorm, Embedding without padding), the
calls their unmodified ``reset_parameters`` makes are a fixed function of their shapes, so this module states
those calls and hands them to the recorder as if the code had made them.

Safety: a module takes the fast path only when its class's ``reset_parameters`` is torch's own function (not
overridden by a subclass or on the instance), every tensor it writes is a non-empty, contiguous, plain tensor,
and the first module of each (class, layout) seen in a process was *also* recorded the slow way and gave the
same calls: a torch version whose ``reset_parameters`` differs turns the fast path off for that class, and
recording runs as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

#: one recorded init call: (tensor attribute name, torch.nn.init function name, positional args after the tensor)
Call = tuple[str, str, tuple]


_SQRT5 = (math.sqrt(5),)


def _linear(m: nn.Module) -> list[Call] | None:
    # nn.Linear.reset_parameters and _ConvNd.reset_parameters (contiguous weight): kaiming_uniform_(w, a=√5),
    # then bias ~ U(-1/√fan_in, 1/√fan_in); fan_in = size(1) * receptive field, as _calculate_fan_in_and_fan_out.
    # The tensors are read from _parameters (what known_calls checks) unless an instance attribute shadows them.
    d = m.__dict__
    if "weight" in d or "bias" in d:
        return None
    params = m._parameters
    w = params.get("weight")
    if w is None:
        return None
    shape = w.shape
    if len(shape) < 2:
        return None
    has_bias = params.get("bias") is not None
    calls = _LINEAR_CALLS.get((shape, has_bias))
    if calls is None:  # (a model repeats a few layer shapes: the calls of each are stated once)
        calls = [("weight", "kaiming_uniform_", _SQRT5)]
        if has_bias:
            fan_in = shape[1] * math.prod(shape[2:]) if len(shape) > 2 else shape[1]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            calls.append(("bias", "uniform_", (-bound, bound)))
        if len(_LINEAR_CALLS) >= _MEMO_MAX:
            _LINEAR_CALLS.clear()
        _LINEAR_CALLS[(shape, has_bias)] = calls
    return calls


_MEMO_MAX = 4096
_LINEAR_CALLS: dict[tuple, list[Call]] = {}  # (weight shape, has bias) -> the calls (shared: never changed)
# (known_calls gives derived lists to its callers: they read them, never change them)


# The calls of the modules below depend only on which tensors they have: one shared (never changed) list each.
_NONE: list[Call] = []
_ONES: list[Call] = [("weight", "ones_", ())]
_ONES_ZEROS: list[Call] = [("weight", "ones_", ()), ("bias", "zeros_", ())]
_NORMAL: list[Call] = [("weight", "normal_", ())]


def _affine_norm(m: nn.Module) -> list[Call] | None:
    # LayerNorm / GroupNorm (flag elementwise_affine / affine), RMSNorm (no bias): ones_(weight), zeros_(bias)
    if not getattr(m, "elementwise_affine", getattr(m, "affine", False)):
        return _NONE
    return _ONES_ZEROS if getattr(m, "bias", None) is not None else _ONES


def _embedding(m: nn.Module) -> list[Call] | None:
    if m.padding_idx is not None:
        return None  # the padding row is a partial write: the recorder replays it
    return _NORMAL


#: class whose reset_parameters is known -> the calls it makes (None: take the slow path for this module)
_KNOWN: dict[Callable, Callable[[nn.Module], list[Call] | None]] = {
    nn.Linear.reset_parameters: _linear,
    nn.modules.conv._ConvNd.reset_parameters: _linear,
    nn.LayerNorm.reset_parameters: _affine_norm,
    nn.RMSNorm.reset_parameters: _affine_norm,
    nn.GroupNorm.reset_parameters: _affine_norm,
    nn.Embedding.reset_parameters: _embedding,
}

_UNSEEN = object()
_PARAMETER, _STRIDED = nn.Parameter, torch.strided
_BY_CLASS: dict[type, Callable | None] = {}  # class -> its derive function (None: not known), looked up once

# (class, layout) -> whether the fast path gave what recording gave for the first such module in this process
_VERIFIED: dict[tuple, bool] = {}


def deriver(cls: type) -> Callable[[nn.Module], list[Call] | None] | None:
    """What states the init calls of ``cls``'s modules (None: their code must run); one look-up per class."""
    derive = _BY_CLASS.get(cls, _UNSEEN)
    if derive is _UNSEEN:
        derive = _BY_CLASS[cls] = _KNOWN.get(getattr(cls, "reset_parameters", None))
    return derive


def known_calls(m: nn.Module, derive: Callable[[nn.Module], list[Call] | None] | None = None
                ) -> tuple[tuple, list[Call]] | None:
    """The init calls ``m.reset_parameters()`` would make, with the (class, layout) key they were derived under;
    None when ``m`` must be recorded by running its code. Reads tensor metadata: call it with no
    TorchFunctionMode active (the recorder's would see every read)."""
    if derive is None:
        derive = deriver(type(m))
    if derive is None or "reset_parameters" in m.__dict__:
        return None
    calls = derive(m)
    if calls is None:
        return None
    params = m._parameters
    for attr, _, _ in calls:
        t = params.get(attr)
        if type(t) is not _PARAMETER or t.layout is not _STRIDED or t.numel() == 0 or not t.is_contiguous():
            return None
    memo = _LAYOUTS.get((type(m), id(calls)))
    if memo is not None and memo[0] is calls:  # the same (shared) calls again; the memo keeps them alive
        layout = memo[1]
    else:
        layout = (type(m), *[(a, f) for a, f, _ in calls])
        if len(_LAYOUTS) >= _MEMO_MAX:
            _LAYOUTS.clear()
        _LAYOUTS[(type(m), id(calls))] = (calls, layout)
    if _VERIFIED.get(layout) is False:
        return None
    return layout, calls


_LAYOUTS: dict[tuple, tuple[list[Call], tuple]] = {}  # (class, id(calls)) -> (calls, their layout)


def verified(layout: tuple) -> bool | None:
    """Whether the fast path was checked against recording for this layout (None: not yet)."""
    return _VERIFIED.get(layout)


def set_verified(layout: tuple, ok: bool) -> None:
    """Record the outcome of the one-time check of ``layout`` against recording."""
    _VERIFIED[layout] = ok


def init_function(name: str) -> Callable:
    """The torch.nn.init function the calls name (looked up when used, as the module's code would)."""
    return getattr(torch.nn.init, name)
