"""The default policy for a model made only of torch's own modules, planned from one walk without recording.

``fastinit.apply(model)`` records each module's ``reset_parameters`` (:func:`fastinit.policy.record_default`):
a recorder tracking every tensor, a walk for ties, module slots to follow replaced memory, and the calls of
each known module taken from :mod:`fastinit.known_inits`. For a model whose every module is either such a
known module or *inert* (a container such as ``nn.Sequential``: no init code at all), none of that machinery
has anything to do: no code runs, so no memory is replaced, read or left uninitialized, and without shared
tensors there are no ties. :func:`known_model_specs` then gives the same specs from one walk of the module
tree, at a fraction of the host time (what a model of tens of thousands of small tensors pays).

It gives up (returns None, and :func:`fastinit.apply` records as usual) wherever the result could differ:
any module that is neither known nor inert; a class that overrides ``apply``, ``children`` or the ``named_*``
walks, or ``__getattr__``; init code set on an instance; a module or tensor held twice (ties); a meta
tensor, a tensor subclass (DTensor) or anything else :func:`fastinit.known_inits.known_calls` refuses; an
active TorchFunctionMode or recording. A (class, layout) not yet checked in this process is checked here
first, by recording one such module on its own, exactly as the recorder would.
"""

from __future__ import annotations

import torch
from torch import nn

from . import known_inits
from .calls import fast_spec
from .intercept import active
from .keys import key_for
from .pending import Pending
from .plan import Entry, Plan
from .specs import Spec

_INERT = object()  # a class with no init code of its own (containers)
_UNSEEN = object()
_BY_CLASS: dict[type, object] = {}  # class -> its deriver, _INERT, or None (not plain: record it)

# What the walk (and torch's model.apply / named_parameters) relies on being nn.Module's own
_WALK_METHODS = ("apply", "children", "named_children", "modules", "named_modules", "named_parameters",
                 "named_buffers", "_named_members", "__getattr__", "__getattribute__")
_INIT_NAMES = ("reset_parameters", "_reset_parameters")


def _class_kind(cls: type) -> object:
    kind = _BY_CLASS.get(cls, _UNSEEN)
    if kind is _UNSEEN:
        if any(getattr(cls, m) is not getattr(nn.Module, m) for m in _WALK_METHODS):
            kind = None
        else:
            derive = known_inits.deriver(cls)
            if derive is not None:
                kind = derive
            elif not any(callable(getattr(cls, n, None)) for n in _INIT_NAMES):
                kind = _INERT
            else:
                kind = None
        _BY_CLASS[cls] = kind
    return kind


def known_model_specs(model: nn.Module) -> list[Pending] | None:
    """What ``record_default`` records for ``model``, from one walk; None when ``model`` must be recorded.

    The pending specs come in module order (pre-order, each module's tensors in its own order), as the
    recorder gives them. Nothing is written and torch's RNG is not touched.
    """
    walked = _walk(model)
    return [Pending(name, t, spec) for name, t, spec in walked[0]] if walked is not None else None


def known_model_plan(model: nn.Module, prefix: str = "") -> Plan | None:
    """The plan :func:`fastinit.apply` writes for ``model`` under the default policy (not validated, nothing
    written); None when ``model`` must be recorded. Keys come from ``prefix`` (a full prefix) + each name."""
    walked = _walk(model)
    if walked is None:
        return None
    found, storages = walked
    return Plan([Entry(name, t, spec, key_for(prefix + name)) for name, t, spec in found], storages=storages)


_PLAIN_TYPES = (nn.Parameter, torch.Tensor)


def _walk(model: nn.Module) -> tuple[list[tuple[str, torch.Tensor, Spec]], list[int]] | None:
    # ((name, tensor, spec) of every tensor the default policy writes, the storage id of each one's tensor), or None
    if active() is not None or torch._C._is_torch_function_mode_enabled():
        return None
    out: list[tuple[str, torch.Tensor, Spec]] = []
    out_storages: list[int] = []
    storages: set[int] = set()  # of every tracked tensor: one held twice is a tie
    seen_modules: set[int] = set()
    stack: list[tuple[str, nn.Module]] = [("", model)]
    while stack:
        prefix, m = stack.pop()
        if id(m) in seen_modules:  # one module in two places: model.apply would init it twice
            return None
        seen_modules.add(id(m))
        kind = _BY_CLASS.get(type(m), _UNSEEN)
        if kind is _UNSEEN:
            kind = _class_kind(type(m))
        if kind is None:
            return None
        d = m.__dict__
        if "reset_parameters" in d or "_reset_parameters" in d:
            return None
        for t in m._parameters.values():
            if t is not None:
                if t.is_meta or type(t) not in _PLAIN_TYPES:  # meta: apply refuses it by name; DTensors
                    return None
                sid = t.untyped_storage()._cdata
                if sid in storages:
                    return None
                storages.add(sid)
        if m._buffers:
            for t in m._buffers.values():
                if t is not None and (t.is_floating_point() or t.is_complex()):
                    if t.is_meta or type(t) not in _PLAIN_TYPES:
                        return None
                    sid = t.untyped_storage()._cdata
                    if sid in storages:
                        return None
                    storages.add(sid)
        children = m._modules
        if kind is _INERT:
            if "reset_parameters" in children or "_reset_parameters" in children:
                return None
        else:
            known = known_inits.known_calls(m, kind)
            if known is None or (known_inits.verified(known[0]) is not True and not _verified(m, known)):
                return None
            params = m._parameters
            for attr, fn, args in known[1]:
                t = params[attr]
                out.append((prefix + attr, t, fast_spec(fn, args)))
                out_storages.append(t.untyped_storage()._cdata)
        if children:
            stack.extend((f"{prefix}{name}.", c) for name, c in reversed(children.items()) if c is not None)
    return out, out_storages


class _Reads(Exception):
    pass


def _verified(module: nn.Module, known: tuple[tuple, list]) -> bool:
    """Whether ``known`` (from :func:`known_inits.known_calls`) was checked against recording for its layout:
    the first module of each (class, layout) in a process is recorded on its own and compared."""
    layout, calls = known
    ok = known_inits.verified(layout)
    if ok is None:
        from .policy import default_init, record_callable, tracked_tensors

        def refuse_reads(p: Pending) -> None:
            raise _Reads  # its init code reads a tensor: not a fixed table of calls

        try:
            got = {p.name: (p.spec, p.post_ops, p.seed, p.temporary)
                   for p in record_callable(module, default_init, tracked_tensors(module), refuse_reads)}
        except _Reads:
            got = None
        ok = got == {attr: (fast_spec(fn, args), [], None, False) for attr, fn, args in calls}
        known_inits.set_verified(layout, ok)
    return ok
