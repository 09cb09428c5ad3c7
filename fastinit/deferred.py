"""Deferred construction: build a model without allocating its parameters, then allocate and initialize it in one pass.

``empty_init()`` is the counterpart of accelerate's ``init_empty_weights()`` / ``torch.device("meta")``:
parameters go to the meta device while buffers made by constructors keep their real values, and
every write constructors make into a parameter (init calls, partial writes, copies, ties) is
recorded (:mod:`fastinit.construct`). ``materialize(model, device)`` allocates every parameter once
on ``device`` and by default replays exactly that record as one fused plan, so the model ends as
eager construction leaves it, tensor by tensor (for constructors that only run
``reset_parameters``: bitwise ``fastinit.apply(model, "default", seed=seed)``). Any other policy
(``"hf"``, a preset, :class:`fastinit.Rules`, a callable) replaces the record when given explicitly.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .apply import Writer, run_policy
from .construct import STALE_ATTR, ConstructionRecorder
from .construct_log import MODULE_SLOTS, SLOT_ATTR, ConstructionLog, Slot, init_frames, slots_of
from .construct_temps import from_torch_rng
from .hf import is_hf_model
from .policy import tracked_tensors
from .record import Pending
from .reinit import Reinit, reinit_unfaithful, warn_drawn
from .sharding import is_dtensor
from .specs import Constant
from .ties import retie_declared

__all__ = ["empty_init", "EmptyInit", "materialize", "MaterializeReport"]

#: parameters with at most this many elements stay real under empty_init (see EmptyInit)
KEEP_NUMEL = 65536


@dataclass
class EmptyInit:
    """What an :func:`empty_init` block did: which buffers ended up on the meta device.

    ``meta_buffers`` lists ``"ModuleClass.buffer_name"`` for every buffer registered on the meta
    device inside the block (typically computed from a meta parameter): its value is lost and
    :func:`materialize` can only recover it if the policy writes it.
    """

    keep_numel: int = KEEP_NUMEL
    meta_buffers: list[str] = field(default_factory=list)
    meta_params: int = 0
    kept_params: int = 0
    log: ConstructionLog | None = None  # what constructors wrote into parameters (None: record=False)


@contextlib.contextmanager
def empty_init(*, keep_numel: int = KEEP_NUMEL, warn: bool = True, record: bool = True) -> Iterator[EmptyInit]:
    """Build models with parameters on the meta device (no memory, no init); buffers keep their real values.

    The torch equivalent is ``with torch.device("meta"):`` (which loses buffers too) or accelerate's
    ``init_empty_weights()``. Parameters of more than ``keep_numel`` elements are moved to the meta
    device as they are registered, before any init code can touch them, so constructing costs no
    memory and no random numbers for them. Smaller ones (norm scales, biases, custom vectors)
    stay real so that values constructors set outside ``reset_parameters`` survive; pass
    ``keep_numel=0`` to send every parameter to meta. Buffers are never moved; those registered on
    the meta device anyway are listed in the yielded :class:`EmptyInit` and, with ``warn``, in a
    warning when the block ends. Finish with :func:`materialize`.

    With ``record`` (the default) every write a constructor makes into a parameter is recorded
    instead of run (random ones) or as well as run (constant ones on real parameters), and
    :func:`materialize` replays the record; ``record=False`` is the plain meta build, which
    ``materialize`` initializes with its policy alone.
    """
    state = EmptyInit(keep_numel=keep_numel, log=ConstructionLog() if record else None)
    moved: dict[int, tuple[nn.Parameter, nn.Parameter]] = {}  # id(real param) -> (it, its meta stand-in)
    orig_param = nn.Module.register_parameter
    orig_buffer = nn.Module.register_buffer

    recorder = ConstructionRecorder(state.log) if state.log is not None else None

    def register_parameter(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        orig_param(module, name, param)
        if param is None or is_dtensor(param):
            return
        # made from a temporary whose random init is held back: the parameter takes that init over
        adopted = recorder.adopt(param) if recorder is not None and not param.is_meta else None
        # made from a value computed from a parameter whose random init was deferred: re-running the code that made
        # it (fastinit.reinit) would read that parameter before its value exists, so it is never offered for that
        stale = getattr(param, STALE_ATTR, False)
        if not param.is_meta:
            if id(param) in moved:  # the same real Parameter registered again (a tie): the same meta stand-in
                module._parameters[name] = param = moved[id(param)][1]
            elif param.numel() <= keep_numel:
                state.kept_params += 1
            else:
                meta = _new_param(param, param.detach().to("meta"))
                moved[id(param)] = (param, meta)
                module._parameters[name] = param = meta
                state.meta_params += 1
        if state.log is not None:
            # memory registered again (a tie, ParameterDict's d[k] = d[k].to(device)) keeps what its slot knows
            fresh = state.log.lookup(param)[0] is None
            slot = state.log.track(param)
            module.__dict__.setdefault(MODULE_SLOTS, {})[name] = slot
            if adopted is not None:
                state.log.set_spec(slot, adopted)
                slot.stale = not param.is_meta and not isinstance(adopted, Constant)  # a constant's values are real
            elif not param.is_meta and stale and fresh:
                # kept real, but computed from a deferred init (weight norm's g from its weight): eager's value is
                # unknown until that init is written, so it has none unless a later whole write gives it one
                slot.valued, slot.computed = False, True
            elif not param.is_meta and from_torch_rng(param) and fresh:
                slot.torch_rng = True  # kept real, with values torch's RNG drew (nn.Parameter(torch.randn(d)))
                slot.registered_in = init_frames()
            elif param.is_meta and not slot.valued and not stale:
                slot.registered_in = init_frames()  # lost, unless a later write gives it a value

    def register_buffer(module: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        orig_buffer(module, name, tensor, persistent)
        if tensor is not None and tensor.is_meta:
            state.meta_buffers.append(f"{type(module).__name__}.{name}")

    orig_normal = torch.Tensor.normal_
    own_normal = "normal_" in torch.Tensor.__dict__

    def normal_(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        # Meta tensors hold no values, and torch's meta normal_ is a Python decomposition whose first
        # use imports torch._dynamo (about 1.5 s): constructors' init code on meta parameters is skipped.
        if self.is_meta:
            return self
        return orig_normal(self, *args, **kwargs)

    nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]
    torch.Tensor.normal_ = normal_  # type: ignore[method-assign]
    try:
        with recorder if recorder is not None else contextlib.nullcontext():
            yield state
            if recorder is not None:
                recorder.finish()  # temporaries initialized but never copied into a parameter get their values
    finally:
        moved.clear()
        nn.Module.register_parameter = orig_param  # type: ignore[method-assign]
        nn.Module.register_buffer = orig_buffer  # type: ignore[method-assign]
        if own_normal:
            torch.Tensor.normal_ = orig_normal  # type: ignore[method-assign]
        else:
            del torch.Tensor.normal_
    if warn and state.meta_buffers:
        warnings.warn(_listing("fastinit.empty_init: these buffers were created on the meta device and have no "
                               "value; materialize() can only restore them if the policy writes them",
                               state.meta_buffers), RuntimeWarning, stacklevel=3)


@dataclass
class MaterializeReport:
    """What :func:`materialize` did (also returned by :func:`last_materialize`)."""

    allocated_params: list[str] = field(default_factory=list)  # were meta, now allocated and initialized
    moved: list[str] = field(default_factory=list)  # were real: moved/cast (and re-initialized by the policy)
    restored_buffers: list[str] = field(default_factory=list)  # were meta, written by the policy
    meta_leftovers: list[str] = field(default_factory=list)  # were meta, nothing wrote them (left NaN / -1)
    uninitialized_params: list[str] = field(default_factory=list)  # were meta, the policy gave no spec
    seed: int = 0


_last: MaterializeReport | None = None


def last_materialize() -> MaterializeReport | None:
    """The report of the last :func:`materialize` call in this process."""
    return _last


def materialize(model: nn.Module, device: torch.device | str | None = None, policy: Any = "default", *,
                seed: int | None = None, dtype: torch.dtype | None = None, backend: str = "auto",
                generator: torch.Generator | None = None, strict: bool = True) -> nn.Module:
    """Allocate every parameter of a meta (or partly meta) ``model`` on ``device`` and initialize it in one fused pass.

    The torch equivalent is eager construction on ``device`` (for a model built under
    :func:`empty_init`), or ``model.to_empty(device=device)`` followed by each module's
    ``reset_parameters()`` (or ``model.apply(init_weights)``), which loses buffer values and runs
    one kernel per tensor. Here:

    - every parameter is allocated exactly once, directly on ``device`` (real ones are moved);
      tied parameters (one ``Parameter`` object under several names) stay one tensor, and ties the
      model declares (a transformers model's ``tie_weights()``, or a ``_tied_weights_keys``
      ``{target: source}`` dict) are made again first, since meta builds such as accelerate's
      ``init_empty_weights`` break them; ``dtype`` casts floating-point parameters as they are
      allocated (buffers keep theirs);
    - ``policy="default"`` on a model built under ``empty_init()`` replays what its constructors
      wrote (every init call, partial write, copy and tie, in order; see :mod:`fastinit.construct`),
      so the result is what eager construction gives, tensor by tensor, from the fastinit stream;
      a record that cannot be replayed exactly raises before anything is written; a tensor whose
      record holds no faithful value (lost on meta, or drawn from torch's RNG) gets the default
      init that wrote it recorded again, when one did (:mod:`fastinit.reinit`), else a warning
      (drawn) or the error below (lost);
    - ``"default"`` on a transformers model without such a record (accelerate's
      ``init_empty_weights``, ``torch.device("meta")``) is ``"hf"``: what its constructor runs;
    - any other ``policy`` (and ``"default"`` on other models without a record) is
      :func:`fastinit.apply`'s: the values are bitwise those of eager construction followed by
      ``fastinit.apply(model, policy, seed=seed)``; ``seed``, ``backend``, ``generator`` as there;
    - buffers keep their values and move to ``device``; buffers that were meta are allocated
      (floating ones filled with NaN, integer ones with -1) and reported in a warning unless the
      policy writes them;
    - a parameter that was meta and gets no value has none: with ``strict`` (the default) that
      is a ``RuntimeError`` naming them all, raised before anything is written; ``strict=False``
      warns and leaves their memory uninitialized.

    Models whose parameters are DTensors on the meta device (``fully_shard`` /
    ``parallelize_module`` applied to a meta model) are allocated with ``model.to_empty`` (which
    FSDP2 supports) and each rank writes only its shard. Returns ``model``.
    """
    global _last
    device = torch.device(device if device is not None else "cpu")
    report = MaterializeReport()
    retie_declared(model)
    slots = slots_of(model) if isinstance(policy, str) and policy == "default" else {}
    recorded = set(slots.values())
    if slots and any(p.is_meta and n not in recorded for n, p in model.named_parameters()):
        warnings.warn("fastinit.materialize: some meta parameters of this model were not built under empty_init(), so "
                      "its constructors' record is incomplete; initializing with the modules' reset_parameters "
                      "instead", RuntimeWarning, stacklevel=2)
        slots = {}
    if not slots and isinstance(policy, str) and policy == "default" and is_hf_model(model):
        policy = "hf"  # without a record, what a transformers constructor runs is its post_init: _init_weights
    if slots:
        broken = [f"{name} ({slot.broken})" for slot, name in slots.items() if slot.broken]
        if broken:
            raise RuntimeError(_listing("fastinit.materialize: what the constructors wrote into these parameters "
                                        "cannot be replayed exactly; pass an explicit policy", broken))
    meta_buffers = _allocate(model, device, dtype, report)
    # seed None is drawn only once everything is checked: a refused call leaves the caller's RNG alone
    writer = Writer(seed, backend, generator=generator)
    tracked = tracked_tensors(model)

    def refuse(names: list[str]) -> None:
        report.uninitialized_params = names
        if names:
            msg = _listing("fastinit.materialize: the policy gives no value to these parameters that were on the "
                           "meta device (or were computed at construction from a parameter whose init empty_init "
                           "defers), so their memory is uninitialized (give them a spec with fastinit.Rules, a "
                           "reset_parameters method, or build them outside empty_init)", names)
            if strict:
                raise RuntimeError(msg + "; pass strict=False to continue anyway")
            warnings.warn(msg, RuntimeWarning, stacklevel=5)

    def refuse_uninitialized(pending: list[Pending], flushed: set[str]) -> None:
        covered = flushed | {p.name for p in pending}
        refuse([n for n in report.allocated_params if n in tracked and n not in covered])

    if slots:
        for log, mapping in _by_log(model, slots):  # the whole record checked before the re-init flushes anything
            log.prepare(mapping, backend)
        reinit = reinit_unfaithful(model, slots, device, writer)
        valued = {name for slot, name in slots.items() if slot.valued} | reinit.covered
        computed = [name for slot, name in slots.items() if slot.computed and name not in report.allocated_params]
        refuse([n for n in report.allocated_params + computed if n in tracked and n not in valued])
        warn_drawn(reinit.drawn)
        _replay(model, slots, writer, backend, reinit)
    else:
        run_policy(model, policy, tracked, seed, backend, check=refuse_uninitialized, writer=writer)
    report.seed = writer.drawn_seed if writer.drawn_seed is not None else 0
    for name, buf in meta_buffers.items():
        if _is_sentinel(buf):
            report.meta_leftovers.append(name)
        else:
            report.restored_buffers.append(name)
    if report.meta_leftovers:
        warnings.warn(_listing("fastinit.materialize: these buffers were on the meta device and nothing restored "
                               "them (left NaN, or -1 for integers); set them yourself", report.meta_leftovers),
                      RuntimeWarning, stacklevel=2)
    for m in model.modules():  # the record is used up (or replaced by the policy): a later call must not find it
        m.__dict__.pop(MODULE_SLOTS, None)
    _last = report
    return model


def _replay(model: nn.Module, slots: dict[Slot, str], writer: Writer, backend: str, reinit: Reinit) -> None:
    """Replay the constructors' record on the allocated parameters: one fused plan per record, then its ops.

    What ``reinit`` covers is written by it instead, first (ops of the record may read those tensors);
    everything is validated before the first write.
    """
    skip = reinit.skip(slots)
    # looked up now: the re-init may have made a parameter anew (A_log)
    replays = [log.prepare(mapping, backend, skip) for log, mapping in _by_log(model, slots)]
    reinit.validate(backend)
    reports = reinit.write()
    for r in replays:
        reports.extend(r.run(writer.seed, backend))
    # fastinit.last_report() shows what was fused (the package attribute `apply` is the function, not the module)
    sys.modules["fastinit.apply"]._last_report = reports


_Mapping = dict[Slot, tuple[str, torch.Tensor]]


def _by_log(model: nn.Module, slots: dict[Slot, str]) -> list[tuple[ConstructionLog, _Mapping]]:
    """Each record with its slots' (name, current parameter of the model)."""
    by_log: dict[int, tuple[ConstructionLog, _Mapping]] = {}
    for slot, name in slots.items():
        by_log.setdefault(id(slot.log), (slot.log, {}))[1][slot] = (name, model.get_parameter(name))
    return list(by_log.values())


def _listing(head: str, names: list[str], shown: int = 20) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{head}: {', '.join(names[:shown])}{more}"


def _sentinel_fill(t: torch.Tensor) -> None:
    if t.is_floating_point() or t.is_complex():
        t.fill_(math.nan)
    elif t.dtype != torch.bool:
        t.fill_(-1)
    else:
        t.fill_(False)


def _is_sentinel(t: torch.Tensor) -> bool:
    if t.numel() == 0 or t.dtype == torch.bool:
        return False
    if t.is_floating_point() or t.is_complex():
        return bool(torch.isnan(t).all())
    return bool((t == -1).all())


def _allocate(model: nn.Module, device: torch.device, dtype: torch.dtype | None,
              report: MaterializeReport) -> dict[str, torch.Tensor]:
    """Give every parameter and buffer memory on ``device``; the buffers that were meta, by name."""
    if any(is_dtensor(p) for p in model.parameters()):
        return _allocate_dtensor(model, device, dtype, report)
    new_of: dict[int, torch.Tensor] = {}  # id(old) -> new: one allocation per Parameter object keeps ties
    meta_buffers: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for mod_name, module in model.named_modules(remove_duplicate=False):
            prefix = mod_name + "." if mod_name else ""
            for name, p in list(module._parameters.items()):
                if p is None:
                    continue
                if id(p) not in new_of:
                    want = dtype if (dtype is not None and p.is_floating_point()) else p.dtype
                    if p.is_meta:
                        # the strides it had, so that views recorded by its constructor land where they did
                        data = torch.empty_strided(p.shape, p.stride(), dtype=want, device=device)
                        report.allocated_params.append(prefix + name)
                    elif p.device != device or p.dtype != want:
                        data = p.detach().to(device=device, dtype=want)
                        report.moved.append(prefix + name)
                    else:
                        new_of[id(p)] = p
                        continue
                    new = _new_param(p, data)
                    new_of[id(p)] = new
                module._parameters[name] = new_of[id(p)]
            for name, b in list(module._buffers.items()):
                if b is None:
                    continue
                if id(b) not in new_of:
                    if b.is_meta:
                        nb = torch.empty(b.shape, dtype=b.dtype, device=device)
                        _sentinel_fill(nb)
                        meta_buffers[prefix + name] = nb
                    else:
                        nb = b.to(device)
                    new_of[id(b)] = nb
                module._buffers[name] = new_of[id(b)]
    return meta_buffers


def _new_param(old: nn.Parameter, data: torch.Tensor) -> nn.Parameter:
    try:
        new = type(old)(data, requires_grad=old.requires_grad)
    except TypeError:  # a Parameter subclass with its own constructor
        new = nn.Parameter(data, requires_grad=old.requires_grad)
    new.__dict__.update(old.__dict__)  # flags such as Hugging Face's _is_hf_initialized
    new.__dict__.pop(SLOT_ATTR, None)  # the record belongs to the meta parameter it was made for
    return new


def _allocate_dtensor(model: nn.Module, device: torch.device, dtype: torch.dtype | None,
                      report: MaterializeReport) -> dict[str, torch.Tensor]:
    # FSDP2 and tensor parallel manage their own DTensor parameters; to_empty is the allocation they
    # support. It also empties buffers, so real buffer values are saved and copied back.
    if dtype is not None:
        raise NotImplementedError("materialize(dtype=...) is not supported for DTensor parameters: "
                                  "build the model in the dtype you want before sharding it")
    report.allocated_params = [n for n, p in model.named_parameters() if p.is_meta]
    saved = {n: b for n, b in model.named_buffers() if b is not None and not b.is_meta}
    meta_names = [n for n, b in model.named_buffers() if b is not None and b.is_meta]
    model.to_empty(device=device)
    meta_buffers: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        buffers = dict(model.named_buffers())
        for n, b in saved.items():
            buffers[n].copy_(b)
        for n in meta_names:
            _sentinel_fill(buffers[n])
            meta_buffers[n] = buffers[n]
    return meta_buffers
