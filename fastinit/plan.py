"""Plans: one checked entry per distinct storage, grouped by (device, dtype), then executed.

The whole plan is validated (every spec resolved, every tensor checked, a backend found for
every entry) before any tensor is written, so a bad spec raises and leaves everything untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .backends import auto_order, get_backend
from .backends.base import FUSED_DTYPES, Backend
from .keys import torch_generator_for
from .specs import Constant, Dirac, Eye, Spec, resolve_spec
from .tables import Resolved, ShardMap, build_tables, to_signed64

log = logging.getLogger("fastinit")

_DETERMINISTIC = (Constant, Eye, Dirac)


@dataclass
class Entry:
    """One tensor to write: its name, spec, key and where it sits in its global tensor."""

    name: str
    tensor: torch.Tensor  # the tensor written (a DTensor's local shard)
    spec: Spec
    key: int
    global_shape: tuple[int, ...] | None = None  # None: the tensor's own shape
    shard: ShardMap = field(default_factory=ShardMap)
    post_ops: list[Callable[[], object]] = field(default_factory=list)  # run after the write, in order
    resolved: Resolved | None = None
    backend: str = ""
    passed_over: tuple[str, ...] = ()  # why auto did not take the backends it tried first

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.global_shape if self.global_shape is not None else self.tensor.shape)


@dataclass
class GroupReport:
    """What one launch did."""

    device: str
    dtype: str
    backend: str
    tensors: int
    elements: int
    passed_over: tuple[str, ...] = ()  # why faster backends did not take this group (auto only)


def storage_key(t: torch.Tensor) -> tuple:
    """Identity of the memory a tensor view covers (tied weights share it)."""
    return (t.untyped_storage()._cdata, t.storage_offset(), tuple(t.shape), tuple(t.stride()))


def _extent(t: torch.Tensor) -> tuple[int, int]:
    """[first, last] element of its storage that a (non-empty) view can touch."""
    last = t.storage_offset() + sum((s - 1) * st for s, st in zip(t.shape, t.stride()) if s > 0)
    return t.storage_offset(), last


def _check_disjoint(entries: list[Entry]) -> None:
    """Different tensors (names) in one plan must not share memory: one fused launch writes them at once."""
    spans: dict[int, list[tuple[int, int, str]]] = {}
    for e in entries:
        if e.tensor.numel() == 0 or e.tensor.is_meta:
            continue
        first, last = _extent(e.tensor)
        same_storage = spans.setdefault(e.tensor.untyped_storage()._cdata, [])
        for a, b, other in same_storage:
            if other != e.name and first <= b and a <= last:
                raise RuntimeError(f"{other or 'tensor'} and {e.name or 'tensor'} are different views of overlapping "
                                   "memory; initialize one of them (or their common base) instead")
        same_storage.append((first, last, e.name))


def _kind(entry: Entry) -> int | None:
    return entry.resolved.kind if entry.resolved is not None else None


class Plan:
    """An ordered set of entries, validated as a whole, then executed group by group."""

    def __init__(self, entries: list[Entry]):
        seen: dict[tuple, int] = {}
        self.entries: list[Entry] = []
        for e in entries:
            k = storage_key(e.tensor)
            if k in seen:  # a later spec for the same memory wins, as it would eagerly
                self.entries[seen[k]] = e
            else:
                seen[k] = len(self.entries)
                self.entries.append(e)

    def validate(self, backend: str = "auto") -> None:
        """Resolve every spec and choose every entry's backend; raise before anything is written."""
        if backend != "auto":
            get_backend(backend)  # unknown names raise ValueError
        problems = []
        _check_disjoint(self.entries)
        for e in self.entries:
            t = e.tensor
            if t.is_meta:
                raise RuntimeError(
                    f"{e.name or 'tensor'} is on the meta device: it has no memory to initialize. "
                    "Materialize it first, e.g. fastinit.materialize(model, device=...)."
                )
            if torch._debug_has_internal_overlap(t) == 1:  # an expanded view: as torch refuses in-place writes
                raise RuntimeError(
                    f"{e.name or 'tensor'}: unsupported operation: more than one element of the written-to tensor "
                    "refers to a single memory location. Please clone() the tensor before performing the operation.")
            e.resolved = resolve_spec(e.spec, e.shape)
            if t.dtype not in FUSED_DTYPES:
                if isinstance(e.spec, _DETERMINISTIC) or t.dtype.is_complex:
                    e.resolved = None  # torch handles these dtypes itself
                else:
                    raise NotImplementedError(
                        f'"{e.spec.torch_name}" not implemented for {t.dtype} ({e.name or "tensor"})')
            if e.resolved is None and e.shape != tuple(t.shape):
                raise NotImplementedError(
                    f"{e.name}: {e.spec.torch_name} has no fused form, and torch's own version cannot write one shard "
                    "of a sharded tensor as the same slice of the whole; initialize it before sharding, or use a "
                    "fused spec")
            why = self._choose(e, backend)
            if why:
                problems.append(f"{e.name or 'tensor'} ({t.device}, {t.dtype}): " + "; ".join(why))
        if problems:
            raise RuntimeError(f"backend {backend!r} cannot take every tensor:\n  " + "\n  ".join(problems))

    @staticmethod
    def _choose(e: Entry, backend: str) -> list[str]:
        kind = _kind(e)
        if kind is None:  # no fused form: torch.nn.init is the fallback whatever was asked
            e.backend = "torch"
            return []
        names = auto_order(e.tensor.device) if backend == "auto" else (backend,)
        why = []
        for name in names:
            r = get_backend(name).reasons(e.tensor.device, e.tensor.dtype, kind)
            if not r:
                e.backend = name
                e.passed_over = tuple(why)
                return []
            why.extend(f"{name}: {x}" for x in r)
        return why

    def execute(self, seed: int, backend: str = "auto") -> list[GroupReport]:
        """Validate, then write every entry: one fused launch per (device, dtype, backend) group."""
        self.validate(backend)
        groups: dict[tuple, list[Entry]] = {}
        for e in self.entries:
            if e.tensor.numel() == 0:
                continue
            groups.setdefault((e.tensor.device, e.tensor.dtype, e.backend), []).append(e)
        reports = []
        with torch.no_grad():
            for (device, dtype, name), entries in groups.items():
                if name == "torch":
                    for e in entries:
                        e.spec.run_torch(e.tensor.detach(), torch_generator_for(seed, e.key, e.tensor.device))
                else:
                    _run_fused(get_backend(name), entries, seed)
                passed_over = tuple(dict.fromkeys(r for e in entries for r in e.passed_over))
                reports.append(GroupReport(str(device), str(dtype).replace("torch.", ""), name, len(entries),
                                           sum(e.tensor.numel() for e in entries), passed_over))
                log.info("fastinit: %s %s: %d tensors, %d elements -> %s%s", device, dtype, len(entries),
                         reports[-1].elements, name, f" (passed over: {'; '.join(passed_over)})" if passed_over else "")
            for e in self.entries:
                for op in e.post_ops:
                    op()
        return reports


def _run_fused(backend: Backend, entries: list[Entry], seed: int) -> None:
    outs, copies = [], []
    for e in entries:
        t = e.tensor.detach()
        if t.is_contiguous():
            outs.append(t)
        else:  # kernels write row-major contiguous memory; copy into the strided tensor after
            buf = torch.empty(t.shape, dtype=t.dtype, device=t.device)
            outs.append(buf)
            copies.append((t, buf))
    table, params = build_tables([(o.numel(), e.key, e.resolved, e.shard) for o, e in zip(outs, entries)],
                                 outs[0].dtype)
    backend.fill(outs, table, params, to_signed64(seed))
    for t, buf in copies:
        t.copy_(buf)
