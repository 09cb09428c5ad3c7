"""The log of what constructors wrote into parameters under ``empty_init``, and its replay by ``materialize``.

A :class:`Slot` per parameter registered inside the block (its memory is meta, or real when small)
holds the last whole-tensor init as a spec; every other write (a padding row zeroed, a sinusoidal
table ``copy_``-ed in, a slice initialized alone, ``w.mul_(0.5)``) is an :class:`Op` in one global
list, kept in the order it ran. A whole init of a tensor makes its earlier ops dead.

Replay (:meth:`ConstructionLog.replay`): one fused plan of every live spec, then every live op in
recorded order on the allocated tensors. That is exactly eager order: an op ran after the spec of
the tensor it writes, and after the spec of every tensor it reads, unless that tensor was
initialized again later, which the log marks as impossible to replay (``Slot.broken``) instead of
replaying it wrongly.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils._pytree import tree_flatten, tree_map

from . import specs as S
from .init import run_spec
from .intercept import PRISTINE as _TORCH_INIT
from .keys import key_for
from .plan import GroupReport, Plan
from .sharding import entries_for, fill_global, is_dtensor

#: attribute set on a recorded Parameter: its Slot (materialize finds the log through the model's parameters)
SLOT_ATTR = "_fastinit_slot"
#: attribute set on a module: {parameter attribute: Slot}, to find the record of a Parameter sharding replaced
MODULE_SLOTS = "_fastinit_slots"


@dataclass(eq=False)
class Slot:
    """One parameter registered under ``empty_init``: its last whole init and whether anything gave it a value."""

    tensor: torch.Tensor  # held, so that its storage (the lookup key) is never freed and reused
    log: ConstructionLog
    spec: S.Spec | None = None
    valued: bool = False  # a whole init or a whole overwrite (copy_) gave every element a value
    stale: bool = False  # a real (small) tensor whose eager value is not what materialize will write
    broken: str = ""  # why its recorded writes cannot be replayed (raised by materialize)
    torch_rng: bool = False  # its recorded value came from torch's RNG (a temporary written eagerly, torch.randn)
    computed: bool = False  # kept real, with a value computed from a parameter whose random init was deferred
    registered_in: tuple | None = None  # init_frames() when it was registered with no faithful value (lost, drawn)
    ops: list[Op] = field(default_factory=list)  # live ops writing it
    readers: list[Op] = field(default_factory=list)  # live ops of other slots that read it
    partial_inits: int = 0  # random inits of a part of it (each gets its own key)
    covered: list[tuple[int, int]] = field(default_factory=list)  # dense blocks [start, end) written by part writes


@dataclass(eq=False)
class View:
    """A view of a slot's tensor inside a recorded op: rebuilt on the allocated tensor at replay."""

    slot: Slot
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int


@dataclass(eq=False)
class Op:
    """A recorded write: ``func(*args, **kwargs)`` with :class:`View` for slot views (or a partial spec)."""

    writes: Slot
    func: Callable | None
    args: tuple
    kwargs: dict
    reads: tuple[Slot, ...] = ()
    spec: S.Spec | None = None  # a random init of part of the tensor: written with this spec and its own key
    part: int = 0
    live: bool = True
    inits: tuple = ()  # init_frames() when it was recorded: which modules' default init wrote it


class ConstructionLog:
    """Every write constructors made into the parameters registered inside one ``empty_init`` block."""

    def __init__(self) -> None:
        self.by_storage: dict[int, Slot] = {}
        self.ops: list[Op] = []

    # -- recording -----------------------------------------------------------------------------
    def track(self, t: torch.Tensor) -> Slot:
        """The slot of parameter ``t`` (created on its first registration; a tie registers it again)."""
        key = _storage(t)
        slot = self.by_storage.get(key)
        if slot is None:
            slot = self.by_storage[key] = Slot(t, self, valued=not t.is_meta)
        elif slot.tensor is not t:
            # a new Parameter over the same memory (torchtune's nn.Parameter(linear.weight)): it takes the record over
            # when it covers it whole; a Parameter over part of another's memory cannot be allocated apart from it
            whole = self.lookup(t)[1]
            slot.tensor = t if whole else slot.tensor
            if not whole:
                slot.broken = slot.broken or "another parameter is a view of part of its memory"
        try:
            setattr(t, SLOT_ATTR, slot)
        except (AttributeError, TypeError):  # a tensor subclass without a __dict__
            pass
        return slot

    def lookup(self, t: object) -> tuple[Slot | None, bool]:
        """(the slot whose memory ``t`` views, whether ``t`` covers all of it)."""
        if not isinstance(t, torch.Tensor) or t.is_sparse:
            return None, False
        slot = self.by_storage.get(_storage(t))
        if slot is None:
            return None, False
        b = slot.tensor
        whole = (t.storage_offset() == b.storage_offset() and tuple(t.shape) == tuple(b.shape)
                 and tuple(t.stride()) == tuple(b.stride()))
        return slot, whole

    def reset(self, slot: Slot) -> None:
        """``slot`` is about to be written whole: its earlier ops die; ops that read its old value cannot replay."""
        for op in slot.ops:
            op.live = False
        slot.ops = []
        for op in slot.readers:
            if op.live:
                op.writes.broken = op.writes.broken or (
                    "a constructor wrote it from the value of another parameter and then initialized that "
                    "parameter again; fastinit replays inits in order only when every value read is the final one")
        slot.readers = []
        slot.partial_inits = 0
        slot.covered = []
        slot.torch_rng = False
        slot.registered_in = None

    def cover(self, slot: Slot, view: torch.Tensor) -> None:
        """A write of every element of ``view`` (a part of ``slot``): once such parts cover it, it is valued."""
        if not view.is_contiguous():
            return  # only dense blocks (row slices of a fused qkv) are counted; others leave it unvalued
        slot.covered.append((view.storage_offset(), view.storage_offset() + view.numel()))
        start, end = slot.tensor.storage_offset(), slot.tensor.storage_offset() + slot.tensor.numel()
        reach = start
        for a, b in sorted(slot.covered):
            if a > reach:
                break
            reach = max(reach, b)
        if reach >= end and slot.tensor.is_contiguous():
            slot.valued = True

    def set_spec(self, slot: Slot, spec: S.Spec) -> None:
        """A whole-tensor init."""
        self.reset(slot)
        slot.spec, slot.valued = spec, True

    def add_op(self, slot: Slot, func: Callable | None, args: tuple, kwargs: dict, *, whole_write: bool = False,
               spec: S.Spec | None = None, tainted: Callable[[torch.Tensor], bool] = lambda t: False,
               from_rng: Callable[[torch.Tensor], bool] = lambda t: False) -> None:
        """A write into ``slot`` (``whole_write``: it overwrites every element, reading nothing of it).

        ``from_rng(t)``: whether a value it reads came from torch's RNG (the slot is then marked ``torch_rng``).
        """
        reads: list[Slot] = []

        def template(x):
            if not isinstance(x, torch.Tensor):
                return x
            s, _ = self.lookup(x)
            if s is not None:
                if s is not slot and s not in reads:
                    reads.append(s)
                return View(s, tuple(x.shape), tuple(x.stride()), x.storage_offset())
            if x.is_meta or tainted(x):
                slot.broken = slot.broken or (
                    "a constructor wrote into it a value computed from a parameter under empty_init "
                    f"({getattr(func, '__name__', func)}); that value does not exist until materialize")
                return x
            if from_rng(x):
                slot.torch_rng = True  # replaying this copy would repeat torch's RNG draws, not fastinit's stream
            return x.detach().clone()  # the value as it is now: later changes to the source must not leak in

        if whole_write:
            self.reset(slot)
            slot.spec, slot.valued = None, True
        args_t, kwargs_t = tree_map(template, (args, kwargs))
        op = Op(slot, func, args_t, kwargs_t, tuple(reads), spec, inits=init_frames())
        if spec is not None:
            op.part = slot.partial_inits
            slot.partial_inits += 1
        slot.ops.append(op)
        for s in reads:
            s.readers.append(op)
        self.ops.append(op)

    # -- replay --------------------------------------------------------------------------------
    def replay(self, slots: dict[Slot, tuple[str, torch.Tensor]], seed: int, backend: str,
               skip: frozenset[Slot] = frozenset()) -> list[GroupReport]:
        """Write every live spec of ``slots`` (slot -> (name, allocated tensor)) fused, then replay their ops."""
        return self.prepare(slots, backend, skip).run(seed, backend)

    def prepare(self, slots: dict[Slot, tuple[str, torch.Tensor]], backend: str,
                skip: frozenset[Slot] = frozenset()) -> Replay:
        """The validated replay of ``slots``, nothing written yet.

        ``skip``: slots whose values come from elsewhere (materialize's re-init of what the record
        cannot give faithfully): neither their spec nor their ops are written, but other ops may read them.
        """
        plan = Plan([e for slot, (name, t) in slots.items() if slot.spec is not None and slot not in skip
                     for e in entries_for(name, t, slot.spec, key_for(name))])
        ops = [op for op in self.ops if op.live and op.writes in slots and op.writes not in skip]
        sharded: dict[int, tuple[View, object, float]] = {}
        for op in ops:
            missing = [s for s in op.reads if s not in slots]
            if missing:
                raise RuntimeError(f"fastinit.materialize: {slots[op.writes][0]} was written by its constructor from "
                                   "a parameter that is no longer part of the model; it cannot be replayed")
            if is_dtensor(slots[op.writes][1]):
                fill = _constant_fill(op)
                if fill is None or op.reads or not op.writes.tensor.is_contiguous():
                    raise NotImplementedError(
                        f"fastinit.materialize: {slots[op.writes][0]} is sharded, and its constructor wrote more into "
                        f"it than whole inits and constant fills ({getattr(op.func, '__name__', 'a partial init')}); "
                        "materialize before sharding, or pass a policy")
                sharded[id(op)] = fill
        plan.validate(backend)
        return Replay(plan, ops, sharded, slots)


@dataclass(eq=False)
class Replay:
    """A constructor record ready to write: its fused plan (validated), then its ops in recorded order."""

    plan: Plan
    ops: list[Op]
    sharded: dict[int, tuple[View, object, float]]
    slots: dict[Slot, tuple[str, torch.Tensor]]

    def run(self, seed: int, backend: str) -> list[GroupReport]:
        """Write it: the plan's fused launches, then every op on the allocated tensors."""
        slots = self.slots
        reports = self.plan.execute(seed, backend)

        def rebuild(x, device: torch.device):
            if isinstance(x, torch.Tensor):  # a value captured at construction: it goes where its target went
                return x if x.device == device or (x.dim() == 0 and x.device.type == "cpu") else x.to(device)
            if not isinstance(x, View):
                return x
            base = slots[x.slot][1]
            if tuple(base.stride()) != tuple(x.slot.tensor.stride()):
                raise RuntimeError(f"fastinit.materialize: {slots[x.slot][0]} was allocated with another layout "
                                   "than it had under empty_init; its constructor's writes cannot be replayed")
                # (materialize allocates every parameter with the strides it had: only a caller's change gets here)
            return base.detach().as_strided(x.size, x.stride, base.storage_offset() + x.offset
                                             - x.slot.tensor.storage_offset())

        with torch.no_grad():
            for op in self.ops:
                if id(op) in self.sharded:  # only this rank's part of the region, no gather (fastinit.sharding)
                    view, index, value = self.sharded[id(op)]
                    fill_global(slots[op.writes][1], functools.partial(_region, view=view, index=index), value)
                    continue
                device = slots[op.writes][1].device
                args, kwargs = tree_map(lambda x, d=device: rebuild(x, d), (op.args, op.kwargs),
                                        is_leaf=lambda x: isinstance(x, View))
                if op.spec is not None:
                    name = slots[op.writes][0]
                    run_spec(args[0], op.spec, seed=seed, key=key_for(f"{name}[{op.part}]"), backend=backend)
                else:
                    op.func(*args, **kwargs)
        return reports


def init_frames() -> tuple[tuple[str, torch.nn.Module], ...]:
    """The default inits running now, innermost first: ``("reset", m)`` inside ``m.reset_parameters()`` (or
    ``_reset_parameters``), ``("hf", m)`` inside a transformers ``_init_weights(m)``.

    materialize re-runs one of them for a tensor whose record holds no faithful value only when
    every write of it was made inside it (:mod:`fastinit.reinit`).
    """
    out = []
    f = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_name
        if name in ("reset_parameters", "_reset_parameters", "_init_weights"):
            m = f.f_locals.get("module" if name == "_init_weights" else "self")
            if isinstance(m, torch.nn.Module):
                out.append(("hf" if name == "_init_weights" else "reset", m))
        f = f.f_back
    return tuple(out)


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


_FILLS = {torch.Tensor.zero_: 0.0, _TORCH_INIT["zeros_"]: 0.0, _TORCH_INIT["ones_"]: 1.0}


def _constant_fill(op: Op) -> tuple[View, object, float] | None:
    """(view, index or None, value) when ``op`` writes one constant into a region of its tensor."""
    view = op.args[0] if op.args else None
    if not isinstance(view, View) or op.spec is not None:
        return None
    if op.func in _FILLS:
        return view, None, _FILLS[op.func]
    value = None
    if op.func is torch.Tensor.fill_ and len(op.args) > 1:
        value = op.args[1]
    elif op.func is _TORCH_INIT["constant_"]:
        value = op.args[1] if len(op.args) > 1 else op.kwargs.get("val")
    elif op.func is torch.Tensor.__setitem__ and len(op.args) > 2 and isinstance(op.args[2], (bool, int, float)):
        return view, op.args[1], float(op.args[2])
    return (view, None, float(value)) if isinstance(value, (bool, int, float)) else None


def _region(g: torch.Tensor, view: View, index: object) -> torch.Tensor:
    v = g.as_strided(view.size, view.stride, view.offset - view.slot.tensor.storage_offset())
    return v[index] if index is not None else v


def slots_of(model: torch.nn.Module) -> dict[Slot, str]:
    """Recorded slots of ``model``'s parameters, each with its first qualified name (ties once).

    A parameter that shares a slot's memory without being its tensor (two Parameter objects over one
    memory, both in the model) makes the slot broken: materialize would allocate them apart.
    """
    out: dict[Slot, str] = {}
    for name, p in model.named_parameters():
        slot = getattr(p, SLOT_ATTR, None)
        if isinstance(slot, Slot) and slot.tensor is p and slot not in out:
            out[slot] = name
        elif slot is None and is_dtensor(p):  # fully_shard / parallelize_module replaced the recorded Parameter
            owner, _, local = name.rpartition(".")
            slot = getattr(model.get_submodule(owner), MODULE_SLOTS, {}).get(local)
            if isinstance(slot, Slot) and tuple(slot.tensor.shape) == tuple(p.shape) and slot not in out:
                out[slot] = name
    for name, p in model.named_parameters():
        slot = getattr(p, SLOT_ATTR, None)
        if isinstance(slot, Slot) and slot.tensor is not p:
            owner = out.get(slot, "")
            broken = f"it shares its memory with another Parameter object ({name})"
            if owner:
                slot.broken = slot.broken or broken
            else:  # its record went to a Parameter no longer in the model: nothing can say what it holds
                stray = Slot(p, slot.log, broken=broken)
                out[stray] = name
    return out


def tensors_in(args: object) -> list[torch.Tensor]:
    """Every tensor in a (nested) argument structure."""
    return [t for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)]
