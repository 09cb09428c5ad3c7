"""The plan ``apply`` would execute, worked out without writing anything: what ``explain`` and ``audit`` read.

The policy is recorded on *meta stand-ins*: every parameter and buffer of the model is swapped, for the
duration of the recording, for a meta tensor of the same (global) shape, dtype and strides (tensors that
shared memory share a meta storage; tied tensors stay one object; a DTensor becomes a plain meta tensor
of its global shape, which is the shape its init code sees). Recording on the real tensors would not be
a dry run: a tensor the init code reads is *flushed* (written eagerly), the op that read it then runs on
real memory, and buffers fastinit does not track (``num_batches_tracked``) are written by their module.
On meta stand-ins all of that touches no memory; the originals are put back afterwards (as are the
``_is_hf_initialized`` flags the ``"hf"`` policy resets), so the model is exactly as it was.

The recorded specs are then planned on the *original* tensors with apply's own plan builder and
``Plan.validate`` (which writes nothing): the same entries, keys, resolved numbers and backend choices
as ``apply`` on the same model, tensors flushed during recording included (each gets the one-entry
plan apply's flush executes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .apply import plan_of
from .plan import Entry, Plan
from .policy import resolve_policy, tracked_tensors
from .record import Pending, run_context
from .sharding import is_dtensor
from .specs import Spec, resolve_spec

__all__ = ["Flushed", "PlannedTensor", "dry_run", "meta_stand_ins"]


@dataclass
class Flushed:
    """A spec that init code forced to be written eagerly (it read the tensor while the spec was pending)."""

    spec: Spec
    post_ops: list[Callable[[], object]]  # bound to the meta stand-in
    writes: int  # eager writes into the stand-in's memory seen before the flush (see _WriteLog)


@dataclass
class PlannedTensor:
    """One tracked tensor (tied names once) and what the policy does to it."""

    name: str
    aliases: tuple[str, ...]  # other names of the same tensor (tied weights)
    tensor: torch.Tensor  # the model's own tensor (a DTensor stays a DTensor)
    stand_in: torch.Tensor  # the meta tensor the policy was recorded on (global shape)
    spec: Spec | None = None  # the spec the fused plan writes last; None: the plan does not write it
    post_ops: list[Callable[[], object]] = field(default_factory=list)  # replayed after the write; on stand_in
    flushes: list[Flushed] = field(default_factory=list)
    changed_after_flush: bool = False  # init code modified it in place after its last eager write
    written_by_init_code: bool = False  # init code wrote it with ops that are no spec (copy_, mul_, ...)
    entries: list[Entry] = field(default_factory=list)  # the validated plan entries writing ``spec``
    flush_entries: list[list[Entry]] = field(default_factory=list)  # one validated plan per flush

    @property
    def final_spec(self) -> Spec | None:
        """The spec whose values the tensor ends with (None when nothing determines them)."""
        if self.spec is not None:
            return self.spec
        if self.flushes and not self.changed_after_flush:
            return self.flushes[-1].spec
        return None

    @property
    def final_post_ops(self) -> list[Callable[[], object]]:
        """The partial writes replayed after :attr:`final_spec`."""
        if self.spec is not None:
            return self.post_ops
        return self.flushes[-1].post_ops if self.flushes else []


def _stand_in(t: torch.Tensor, bases: dict[tuple, torch.Tensor]) -> torch.Tensor:
    if is_dtensor(t):
        meta = torch.empty(tuple(t.shape), dtype=t.dtype, device="meta")
    else:
        st = t.untyped_storage()
        key = (st._cdata, t.dtype)
        if key not in bases:
            bases[key] = torch.empty(max(st.nbytes() // t.element_size(), 1), dtype=t.dtype, device="meta")
        meta = bases[key].as_strided(tuple(t.shape), tuple(t.stride()), t.storage_offset())
    if isinstance(t, nn.Parameter):
        meta = nn.Parameter(meta, requires_grad=t.requires_grad)
        if not is_dtensor(t):
            meta.__dict__.update(t.__dict__)  # flags such as _is_hf_initialized
    return meta


class _WriteLog(TorchDispatchMode):
    """Counts the ops that init code runs eagerly (not recorded) and that write into a stand-in's memory.

    The schema's write annotations say which arguments an aten op mutates, so ``w.data.mul_(2)``,
    ``w.copy_(x)`` and ``out=`` writes are all seen (a version counter would miss ``.data``).
    """

    def __init__(self, storages: set[int]):
        super().__init__()
        self.storages = storages
        self.writes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for i, arg in enumerate(func._schema.arguments):
            if arg.alias_info is None or not arg.alias_info.is_write:
                continue
            value = args[i] if i < len(args) and not arg.kwarg_only else kwargs.get(arg.name)
            for t in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(t, torch.Tensor):
                    k = t.untyped_storage()._cdata
                    if k in self.storages:
                        self.writes[k] = self.writes.get(k, 0) + 1
        return func(*args, **kwargs)

    def count(self, t: torch.Tensor) -> int:
        """Writes seen so far into ``t``'s memory."""
        return self.writes.get(t.untyped_storage()._cdata, 0)


_FLAG = "_is_hf_initialized"


@contextlib.contextmanager
def meta_stand_ins(model: nn.Module) -> Iterator[dict[int, torch.Tensor]]:
    """Swap every parameter and buffer of ``model`` for a meta stand-in while inside; id(original) -> stand-in."""
    made: dict[int, torch.Tensor] = {}
    bases: dict[tuple, torch.Tensor] = {}
    saved: list[tuple[dict, str, torch.Tensor]] = []
    modules = list(model.modules())
    flags = [(m, _FLAG in m.__dict__, m.__dict__.get(_FLAG)) for m in modules]
    try:
        for mod in modules:
            for store in (mod._parameters, mod._buffers):
                for k, t in list(store.items()):
                    if t is None:
                        continue
                    if id(t) not in made:
                        made[id(t)] = _stand_in(t, bases)
                    saved.append((store, k, t))
                    store[k] = made[id(t)]
        yield made
    finally:
        for store, k, t in reversed(saved):
            store[k] = t
        for m, had, value in flags:
            if had:
                m.__dict__[_FLAG] = value
            else:
                m.__dict__.pop(_FLAG, None)


def _aliases(model: nn.Module) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    for n, t in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(
            remove_duplicate=False)):
        if t is not None:
            names.setdefault(id(t), []).append(n)
    return names


def _validated(pending: list[Pending], backend: str) -> Plan:
    """apply's plan of ``pending`` with every entry resolved and given its backend; nothing is written."""
    plan = plan_of(pending)
    if any(e.tensor.is_meta for e in plan.entries):  # a deferred model: no memory, so no backend either
        for e in plan.entries:
            e.resolved = resolve_spec(e.spec, e.shape)
            e.backend = ""
        return plan
    plan.validate(backend)
    return plan


def dry_run(model: nn.Module, policy: Any = "default", backend: str = "auto") -> list[PlannedTensor]:
    """What ``fastinit.apply(model, policy, backend=backend)`` would write, per tracked tensor; writes nothing."""
    originals = tracked_tensors(model)
    aliases = _aliases(model)
    flushes: dict[str, list[Flushed]] = {}
    with meta_stand_ins(model):
        stand_ins = tracked_tensors(model)
        log = _WriteLog({t.untyped_storage()._cdata for t in stand_ins.values()})

        def flush(p: Pending) -> None:  # apply writes p here; a dry run only notes it
            flushes.setdefault(p.name, []).append(Flushed(p.spec, list(p.post_ops), log.count(p.tensor)))

        try:
            with log, run_context(model, set()):  # as run_policy records: replaced memory followed through the model
                pending = {p.name: p for p in resolve_policy(model, policy, stand_ins, flush)}
        except (NotImplementedError, RuntimeError) as exc:
            if "meta" not in str(exc):
                raise
            raise RuntimeError(
                "the init code needs the values of a tensor it reads (e.g. .item() or a data-dependent branch), "
                "and a dry run records it on meta stand-ins, which have none; explain/audit cannot follow it: "
                f"{type(exc).__name__}: {exc}") from exc
        end_writes = {n: log.count(t) for n, t in stand_ins.items()}
    rows: dict[str, PlannedTensor] = {}
    for name, t in originals.items():
        p = pending.get(name)
        fl = flushes.get(name, [])
        rows[name] = PlannedTensor(
            name=name, aliases=tuple(n for n in aliases.get(id(t), [name]) if n != name), tensor=t,
            stand_in=stand_ins[name], spec=p.spec if p is not None else None,
            post_ops=list(p.post_ops) if p is not None else [], flushes=fl,
            changed_after_flush=bool(fl) and p is None and end_writes[name] != fl[-1].writes,
            written_by_init_code=p is None and end_writes[name] > (fl[-1].writes if fl else 0))
    plan = _validated([Pending(n, originals[n], r.spec) for n, r in rows.items() if r.spec is not None], backend)
    for e in plan.entries:
        rows[e.name].entries.append(e)
    for name, fl in flushes.items():
        for f in fl:
            rows[name].flush_entries.append(_validated([Pending(name, originals[name], f.spec)], backend).entries)
    return list(rows.values())
