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
walks, or ``__getattr__``; init code set on an instance; a module held twice; a tensor held twice unless the
model declares that tie (:func:`fastinit.ties.declared_ties`), or memory two tensors share; a meta tensor, a
tensor subclass (DTensor) or anything else :func:`fastinit.known_inits.known_calls` refuses; an active
TorchFunctionMode or recording. A (class, layout) not yet checked in this process is checked here
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
    return [Pending(e.name, e.tensor, e.spec) for e in walked[0]] if walked is not None else None


def known_model_plan(model: nn.Module, prefix: str = "") -> Plan | None:
    """The plan :func:`fastinit.apply` writes for ``model`` under the default policy (not validated, nothing
    written); None when ``model`` must be recorded. Keys come from ``prefix`` (a full prefix) + each name."""
    walked = _walk(model, prefix)
    if walked is None:
        return None
    # every tensor is a whole, contiguous, non-empty Parameter of its own storage (known_calls and the walk checked)
    return Plan(*walked, plain=True)


_PLAIN_TYPES = (nn.Parameter, torch.Tensor)


def _walk(model: nn.Module, key_prefix: str = "") -> tuple[list[Entry], list[int]] | None:
    # (the plan entry of every tensor the default policy writes, the storage id of each one's tensor), or None
    if active() is not None or torch._C._is_torch_function_mode_enabled():
        return None
    out: list[Entry] = []
    out_storages: list[int] = []
    storages: dict[int, int] = {}  # storage id of every tracked tensor -> id of the tensor holding it
    tied: dict[int, dict[str, Spec | None]] = {}  # id of a Parameter held twice -> its owners' names -> their specs
    seen_modules: set[int] = set()
    stack: list[tuple[str, nn.Module]] = [("", model)]
    known_calls, verified, spec_of = known_inits.known_calls, known_inits.verified, fast_spec  # (hot loop)
    specs_memo: dict[int, tuple[list, list[Spec]]] = {}  # id(calls) -> (calls, their specs): shared calls, once
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
        params = m._parameters
        for attr, t in params.items():
            if t is not None:
                if t.is_meta or type(t) not in _PLAIN_TYPES:  # meta: apply refuses it by name; DTensors
                    return None
                sid = t.untyped_storage()._cdata
                holder = storages.get(sid)
                if holder is None:
                    storages[sid] = id(t)
                elif holder == id(t):  # a tied Parameter (head.weight = embedding.weight): settled below
                    tied.setdefault(id(t), {})[prefix + attr] = None
                else:  # another tensor on the same memory
                    return None
        if m._buffers:
            for t in m._buffers.values():
                if t is not None and (t.is_floating_point() or t.is_complex()):
                    if t.is_meta or type(t) not in _PLAIN_TYPES:
                        return None
                    sid = t.untyped_storage()._cdata
                    if sid in storages:
                        return None
                    storages[sid] = id(t)
        children = m._modules
        if kind is _INERT:
            if "reset_parameters" in children or "_reset_parameters" in children:
                return None
        else:
            known = known_calls(m, kind)
            if known is None or (verified(known[0]) is not True and not _verified(m, known)):
                return None
            calls = known[1]
            memo = specs_memo.get(id(calls))
            if memo is None or memo[0] is not calls:
                memo = specs_memo[id(calls)] = (calls, [spec_of(fn, args) for _, fn, args in calls])
            for (attr, _, _), spec in zip(calls, memo[1]):
                t = params[attr]
                name = prefix + attr
                owners = tied.get(id(t)) if tied else None
                if owners is not None and name in owners:  # a later owner of a tied tensor
                    owners[name] = spec
                    continue
                out.append(Entry(name, t, spec, key_for(key_prefix + name)))
                out_storages.append(t.untyped_storage()._cdata)
        if children:
            stack.extend((f"{prefix}{name}.", c) for name, c in reversed(children.items()) if c is not None)
    if tied and not _settle_declared_ties(model, tied, out, out_storages):
        return None
    return out, out_storages


def _settle_declared_ties(model: nn.Module, tied: dict[int, dict[str, Spec | None]], out: list[Entry],
                          out_storages: list[int]) -> bool:
    """Give each tied Parameter the init of the owner the model declares its source
    (:func:`fastinit.ties.declared_ties`), under its first name, as :func:`fastinit.ties.record_untied` does; False
    where a tie is not declared (the recorder then picks the first owner and warns where the owners' inits differ)."""
    from .ties import declared_ties

    targets = declared_ties(model)
    first = {id(e.tensor): (i, e.name) for i, e in enumerate(out) if id(e.tensor) in tied}
    drop: set[int] = set()
    for pid, later in tied.items():
        at = first.get(pid)
        if at is None:  # its first owner writes nothing (a container's own parameter): only later owners' specs
            return False
        i, first_name = at
        owners = {first_name: out[i].spec, **later}
        sources = {targets[q] for q in owners if q in targets} & set(owners)
        if len(sources) != 1:
            return False
        spec = owners[sources.pop()]
        if spec is None:  # the source's module writes nothing (inert)
            drop.add(i)
        else:
            out[i].spec = spec
    if drop:
        out[:] = [r for i, r in enumerate(out) if i not in drop]
        out_storages[:] = [s for i, s in enumerate(out_storages) if i not in drop]
    return True


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
