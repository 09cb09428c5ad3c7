"""Plans: one checked entry per distinct storage, grouped by (device, dtype), then executed.

The whole plan is validated (every spec resolved, every tensor checked, a backend found for
every entry) before any tensor is written, so a bad spec raises and leaves everything untouched.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import checks
from .backends import auto_order, get_backend
from .backends.base import FUSED_DTYPES, Backend
from .keys import draw_seed, torch_generator_for
from .overlap import views_share_memory
from .specs import Constant, Dirac, Eye, Orthogonal, Sparse, Spec, TruncNormal, cache_key, resolve_spec
from .strided import write_strided
from .tables import KIND_CONSTANT, Resolved, ShardMap, build_tables, to_signed64

log = logging.getLogger("fastinit")

_DETERMINISTIC = (Constant, Eye, Dirac)


_WHOLE = ShardMap()  # the whole tensor, unsharded (ShardMap is frozen: one shared instance)


@dataclass(slots=True)
class Entry:
    """One tensor to write: its name, spec, key and where it sits in its global tensor."""

    name: str
    tensor: torch.Tensor  # the tensor written (a DTensor's local shard)
    spec: Spec
    key: int
    global_shape: tuple[int, ...] | None = None  # None: the tensor's own shape
    shard: ShardMap = _WHOLE
    post_ops: Sequence[Callable[[], object]] = ()  # run after the write, in order
    resolved: Resolved | None = None
    backend: str = ""
    bumps: int = 0  # version-counter bumps owed after the write (torch's in-place op count); set by Plan
    version_before: int | None = None
    passed_over: tuple[str, ...] = ()  # why auto did not take the backends it tried first
    group: tuple | None = None  # (device, dtype, backend) of its launch; set by Plan.validate

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


def _check_disjoint(entries: list[Entry], storages: list[int | None]) -> None:
    """Different tensors (names) in one plan must not share memory: one fused launch writes them at once.

    Element-exact (``fastinit.overlap``): interleaved views such as ``base[0::2]`` and ``base[1::2]`` pass.
    ``storages`` holds each entry's storage id (None: not a strided tensor), as the plan found them.
    """
    by_storage: dict[int, list[Entry]] = {}
    for e, sid in zip(entries, storages):
        if sid is None:
            continue
        same_storage = by_storage.get(sid)
        if same_storage is None:  # the common case: the first entry in its storage
            by_storage[sid] = [e]
            continue
        if e.tensor.numel() == 0 or e.tensor.is_meta or e.tensor.layout != torch.strided:
            continue
        for other in same_storage:
            o = other.tensor
            if (other.name != e.name and o.numel() and not o.is_meta and o.layout == torch.strided
                    and views_share_memory(o, e.tensor)):
                raise RuntimeError(f"{other.name or 'tensor'} and {e.name or 'tensor'} are different views of "
                                   "overlapping memory; initialize one of them (or their common base) instead")
        same_storage.append(e)


def _kind(entry: Entry) -> int | None:
    return entry.resolved.kind if entry.resolved is not None else None


class Plan:
    """An ordered set of entries, validated as a whole, then executed group by group."""

    def __init__(self, entries: list[Entry], storages: list[int] | None = None, plain: bool = False):
        """``storages`` (optional): the storage id of each entry's tensor, from a caller that knows them all to be
        different (one whole tensor per storage): the plan then keeps every entry as it is. ``plain`` (with
        ``storages``): the caller has checked that every tensor is a non-meta, strided, contiguous, non-empty
        tensor of its own (not a DTensor shard), so :meth:`validate` does not ask again."""
        seen: dict[tuple, int] = {}
        self.entries: list[Entry] = []
        self._storages: list[int | None] = []  # per entry: its storage's id (None: not a strided tensor)
        self._replaced: dict[int, list[Entry]] = {}  # entry index -> earlier entries for the same memory
        self._validated: tuple | None = None  # (backend, generator) of the last validate that passed
        self._plain = plain and storages is not None
        if storages is not None:
            if len(storages) != len(entries) or len(set(storages)) != len(storages):
                raise ValueError("Plan: storages must give one different storage id per entry")
            self.entries, self._storages = list(entries), list(storages)
            return
        for e in entries:
            t = e.tensor
            if isinstance(t, torch.Tensor) and not t.is_sparse:
                sid = t.untyped_storage()._cdata
                k = (sid, t.storage_offset(), t.shape, t.stride())
            else:
                sid, k = None, id(e)
            if k in seen:  # a later spec for the same memory wins, as it would eagerly
                i = seen[k]
                self._replaced.setdefault(i, []).append(self.entries[i])
                self.entries[i] = e
            else:
                seen[k] = len(self.entries)
                self.entries.append(e)
                self._storages.append(sid)

    def validate(self, backend: str = "auto", generator: object = None) -> None:
        """Check every entry as torch would, resolve every spec, choose every backend; raise before any write.

        Per entry, in torch's order: the Python-level checks of the torch function and the argument checks of
        the ATen op it ends in, for the tensor's dtype (``Spec.check_torch``, on a probe; ``generator`` is the
        one a single call got), the inference-tensor check, the checks torch makes after its first write
        (``Spec.check_late``), then internal overlap (random fills only, as torch). What torch writes itself
        (no fused form, a dtype fastinit does not fuse, a deterministic fill of a view whose elements share
        memory) is also dry-run on a scratch tensor (``Spec.dry_run``), so its errors too come before the
        first write. Records per entry the version-counter bumps torch's in-place ops would make.
        """
        if backend != "auto":
            get_backend(backend)  # unknown names raise ValueError
        problems = []
        # one choice per (device, dtype, kind): (backend, passed over, why none could, the launch group)
        chosen: dict[tuple, tuple[str, tuple[str, ...], list[str], tuple]] = {}
        if not self._plain:  # (a plain plan's tensors each have a storage of their own)
            _check_disjoint(self.entries, self._storages)
        replaced, plain = self._replaced, self._plain
        for i, e in enumerate(self.entries):
            t = e.tensor
            # A whole, plain, contiguous, non-empty tensor that torch's checks let through once for this very spec,
            # shape, dtype and device lets it through again: the outcome is reused (models repeat their layers).
            sig = hit = None
            if generator is None and (plain or (e.global_shape is None and t.layout is torch.strided
                                                and not t.is_meta and t.is_contiguous() and i not in replaced)) \
                    and not t.is_inference():
                n = t.numel()
                if n > 0:
                    sig = (id(e.spec), t.shape, t.dtype, t.device, n > 1)
                    hit = _PLAIN_CHECKED.get(sig)
                    if hit is not None and hit[0] is e.spec:
                        e.resolved, e.bumps = hit[1], hit[2]
                        sig = None  # (nothing new to remember)
                    else:
                        hit = None
            if hit is None:
                self._check_entry(i, e, generator)
                if sig is not None and e.resolved is not None:
                    if len(_PLAIN_CHECKED) >= 4096:
                        _PLAIN_CHECKED.clear()
                    _PLAIN_CHECKED[sig] = (e.spec, e.resolved, e.bumps)  # holds the spec: its id is not reused
            device, dtype = t.device, t.dtype
            ck = (device, dtype, _kind(e))
            choice = chosen.get(ck)
            if choice is None:
                why = self._choose(e, backend)
                choice = chosen[ck] = (e.backend, e.passed_over, why, (device, dtype, e.backend))
            e.backend, e.passed_over, why, e.group = choice
            if why:
                problems.append(f"{e.name or 'tensor'} ({device}, {dtype}): " + "; ".join(why))
        if problems:
            raise RuntimeError(f"backend {backend!r} cannot take every tensor:\n  " + "\n  ".join(problems))
        self._validated = (backend, generator)

    def _check_entry(self, i: int, e: Entry, generator: object) -> None:
        """Every check of :meth:`validate` for entry ``i``; sets its resolved spec and version bumps."""
        t = e.tensor
        if t.is_meta:
            raise RuntimeError(
                f"{e.name or 'tensor'} is on the meta device: it has no memory to initialize. "
                "Materialize it first, e.g. fastinit.materialize(model, device=...)."
            )
        if t.layout != torch.strided and not (isinstance(e.spec, Constant) and e.spec.val == 0):
            raise NotImplementedError(f"{e.name or 'tensor'}: fastinit cannot write a {t.layout} tensor "
                                      f"with {e.spec.torch_name}; torch cannot either")
        _check_torch(e, generator)
        deterministic = isinstance(e.spec, _DETERMINISTIC)
        overlapping = t.layout == torch.strided and checks.has_internal_overlap(t)
        # a deterministic fill of a view whose elements share memory: torch's write order decides the values
        shared = overlapping or (deterministic and t.layout == torch.strided and checks.shares_elements(t))
        torch_runs = (t.layout != torch.strided or t.dtype not in FUSED_DTYPES or (shared and deterministic)
                      or isinstance(e.spec, (Orthogonal, Sparse)))
        e.resolved = None if torch_runs else resolve_spec(e.spec, e.shape)
        if e.resolved is None:
            # torch writes these itself: its errors, in its order, from a dry run on a scratch tensor
            # (the spec's shape checks first: the scratch's sizes are capped)
            if isinstance(e.spec, (Eye, Dirac, Orthogonal, Sparse, TruncNormal)):
                resolve_spec(e.spec, e.shape)
            if not isinstance(e.spec, Orthogonal):  # its first write comes after its draws (its dry run checks)
                checks.check_writable(t)
            if not deterministic or shared:
                _dry_run_torch(e)
            e.spec.check_late(e.shape)
        else:
            checks.check_writable(t)
            e.spec.check_late(e.shape)
            if overlapping and e.resolved.kind != KIND_CONSTANT:
                raise RuntimeError(checks.OVERLAP_MESSAGE)  # torch's own message: an expanded view
            if isinstance(e.spec, Constant):
                e.resolved = e.spec.resolve_for(t)  # the value as fill_ converts it to the dtype
        if e.resolved is None and e.shape != tuple(t.shape):
            raise NotImplementedError(
                f"{e.name}: {e.spec.torch_name} has no fused form, and torch's own version cannot write one shard "
                "of a sharded tensor as the same slice of the whole; initialize it before sharding, or use a "
                "fused spec")
        e.bumps = (0 if e.resolved is None else e.spec.version_bumps(e.shape)) + sum(
            r.spec.version_bumps(r.shape) for r in self._replaced.get(i, ()))

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

    def execute(self, seed: int | None, backend: str = "auto", generator: torch.Generator | None = None
                ) -> list[GroupReport]:
        """Validate, then write every entry: one fused launch per (device, dtype, backend) group.

        ``seed`` None draws one from ``generator`` (torch's default generator when None) *after* validation,
        so a refused plan leaves the caller's RNG untouched.
        """
        if self._validated != (backend, generator):  # Writer.write validates every plan first
            self.validate(backend, generator)
        if seed is None:  # torch draws nothing for zero-element tensors
            seed = draw_seed(generator) if any(e.tensor.numel() for e in self.entries) else 0
        groups: dict[tuple, tuple[list[Entry], list[int]]] = {}  # launch group -> its entries and their numels
        owed: tuple[list, list] = ([], [])  # tensors whose version is set once everything is written, and to what
        with_ops: list[Entry] = []
        for e in self.entries:
            t = e.tensor
            if t.is_inference():  # no version counter
                e.version_before = None
            else:
                v = e.version_before = t._version
                if e.bumps:
                    owed[0].append(t)
                    owed[1].append(v + e.bumps)
            if e.post_ops:
                with_ops.append(e)
            n = t.numel()
            if n == 0 and e.backend != "torch":
                continue  # nothing to write; torch's in-place ops bump the version of zero-element tensors too
            key = e.group if e.group is not None else (t.device, t.dtype, e.backend)
            group = groups.get(key)
            if group is None:
                groups[key] = ([e], [n])
            else:
                group[0].append(e)
                group[1].append(n)
        reports = []
        with torch.no_grad():
            for (device, dtype, name), (entries, numels) in groups.items():
                if name == "torch":
                    for e in entries:
                        # detach() shares the version counter: torch's own ops bump it as they do eagerly; their
                        # warnings were given where the call was made (or recorded)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            e.spec.run_torch(e.tensor.detach(), torch_generator_for(seed, e.key, e.tensor.device))
                else:
                    _run_fused(get_backend(name), entries, numels, seed, contiguous=self._plain)
                passed_over = tuple(dict.fromkeys(r for e in entries if e.passed_over for r in e.passed_over))
                reports.append(GroupReport(str(device), str(dtype).replace("torch.", ""), name, len(entries),
                                           sum(numels), passed_over))
                log.info("fastinit: %s %s: %d tensors, %d elements -> %s%s", device, dtype, len(entries),
                         reports[-1].elements, name, f" (passed over: {'; '.join(passed_over)})" if passed_over else "")
            _set_versions(*owed)
            for e in with_ops:
                for op in e.post_ops:
                    op()
        return reports


# Spec checks that passed, by what they depend on: the spec and shape, the tensor's dtype, device and layout, whether
# it is empty or has one element (fill_'s two paths), and no generator. Models repeat a handful of (spec, shape).
_CHECKED: set[tuple] = set()


def _check_torch(e: Entry, generator: object) -> None:
    """``e.spec.check_torch`` (torch's argument checks on a probe), skipped when the same check passed before."""
    t = e.tensor
    if generator is not None:
        e.spec.check_torch(t, e.shape, generator)
        return
    tensor_part = (e.shape, t.dtype, t.device, t.layout, min(t.numel(), 2))
    if _CHECKED_SPEC.get((id(e.spec),) + tensor_part) is e.spec:  # the very spec object (a shared one) again
        return
    try:
        key = (cache_key(e.spec, e.shape),) + tensor_part
        hash(key)
    except TypeError:  # an unhashable field: no memo
        e.spec.check_torch(t, e.shape, generator)
        return
    if key not in _CHECKED:
        e.spec.check_torch(t, e.shape, generator)
        if len(_CHECKED) >= 4096:
            _CHECKED.clear()
            _CHECKED_SPEC.clear()
        _CHECKED.add(key)
    if len(_CHECKED_SPEC) >= 4096:
        _CHECKED_SPEC.clear()
    _CHECKED_SPEC[(id(e.spec),) + tensor_part] = e.spec  # holds the spec, so its id is not reused while cached


_CHECKED_SPEC: dict[tuple, Spec] = {}
# validate's outcome for plain entries: (id(spec), shape, dtype, device, numel > 1) -> (spec, resolved, bumps)
_PLAIN_CHECKED: dict[tuple, tuple] = {}


def _set_versions(tensors: list[torch.Tensor], versions: list[int]) -> None:
    """Set each tensor's ``_version`` to what torch's in-place ops would have made it, in one call (the fused write
    bumps nothing, a strided chunk's ``copy_`` bumps once per chunk: the count is set, not added)."""
    if tensors:
        torch._C._autograd._unsafe_set_version_counter(tuple(tensors), tuple(versions))


def _dry_run_torch(e: Entry) -> None:
    """``e.spec.dry_run``: the errors of torch's own function for ``e.tensor``, before any write.

    Warnings are silenced (the real call warns, once, where the caller's code is); the generator is a
    private one, so nothing is drawn from the caller's.
    """
    t = e.tensor
    with torch._C.DisableTorchFunction():
        gen = torch.Generator(device=t.device)
        gen.manual_seed(0)
    with warnings.catch_warnings(), torch.no_grad(), torch._C.DisableTorchFunction():
        warnings.simplefilter("ignore")
        e.spec.dry_run(t, gen)


def _run_fused(backend: Backend, entries: list[Entry], numels: list[int], seed: int, contiguous: bool = False) -> None:
    """One launch for ``entries`` (``numels``: their element counts); ``contiguous``: every tensor is known to be."""
    if contiguous:
        outs, strided = entries, []
    else:
        outs, strided = [], []
        for e in entries:
            if e.tensor.is_contiguous():
                outs.append(e)
            else:  # kernels write row-major contiguous memory: a strided tensor is written chunk by chunk
                strided.append(e)
    if outs:
        if outs is entries:
            rows = [(n, e.key, e.resolved, e.shard) for e, n in zip(entries, numels)]
        else:
            rows = [(e.tensor.numel(), e.key, e.resolved, e.shard) for e in outs]
        table, params = build_tables(rows, outs[0].tensor.dtype)
        backend.fill([e.tensor for e in outs], table, params, to_signed64(seed))
    for e in strided:
        write_strided(backend, e.tensor, e.key, e.resolved, e.shard, seed)
