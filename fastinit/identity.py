"""Identity: which tracked tensor a view or a storage belongs to, and where a model keeps each tensor.

A tensor's identity while recording is its memory (tied weights share it; a view of a weight is the
weight). But init code can replace that memory (``self.to_empty(device)``, ``p.data =
torch.empty_like(p)``, ``self.inv_freq = ...``): the model's tensor is then another one. So each
tracked name also remembers its *slot*, the (module, attribute) that holds it, and the recorder
follows the slot (:class:`Slots`) rather than the old memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

from . import walk
from .overlap import views_share_memory
from .sharding import is_dtensor, local_tensor

if TYPE_CHECKING:
    from .pending import Pending

_SETITEM = torch.Tensor.__setitem__


def storage_id(t: torch.Tensor) -> int:
    """The identity of the memory ``t`` views (a DTensor's is its local shard's, which ``to_local()`` shares)."""
    return local_tensor(t).untyped_storage()._cdata


def covers(view: torch.Tensor, whole: torch.Tensor) -> bool:
    """Whether ``view`` is all of ``whole`` (same offset, shape and strides; DTensors: same placements too)."""
    if is_dtensor(view) or is_dtensor(whole):
        if not (is_dtensor(view) and is_dtensor(whole)) or tuple(view.shape) != tuple(whole.shape) \
                or tuple(view.placements) != tuple(whole.placements):
            return False
        view, whole = local_tensor(view), local_tensor(whole)
    return (view.storage_offset() == whole.storage_offset() and tuple(view.shape) == tuple(whole.shape)
            and tuple(view.stride()) == tuple(whole.stride()))


def _has_elements(t: torch.Tensor) -> bool:
    # a plain, non-empty strided tensor with memory: one whose elements overlap.py can compare
    return not is_dtensor(t) and not t.is_meta and t.numel() > 0 and t.layout == torch.strided


def disjoint_view(t: torch.Tensor, others: list[Pending]) -> bool:
    """Whether ``t`` shares no element with any of ``others``' tensors (all in ``t``'s storage): then it is a
    tensor of its own, as parameters that are views of one flat buffer are, not an alias of one of them."""
    return _has_elements(t) and all(_has_elements(q.tensor) and not views_share_memory(t, q.tensor) for q in others)


class Slots:
    """name -> the (module, attribute) holding that tensor in ``model``, for the tracked tensors (name -> tensor).

    A name's slot is the attribute of that qualified name when it holds the tracked tensor itself; otherwise
    (a tied tensor whose first name's attribute holds something else right now, such as fastinit.ties' meta
    stand-in for a losing owner) the first attribute in module order that holds it.
    """

    def __init__(self, model: nn.Module | None, tracked: dict[str, torch.Tensor]):
        self._slots: dict[str, tuple[nn.Module, str, bool]] = {}
        if model is None:
            return
        by_id = {id(t): n for n, t in tracked.items()}
        held: dict[str, tuple[nn.Module, str, bool]] = {}  # name -> first slot holding its very tensor
        for mod_name, module in walk.modules(model):
            prefix = mod_name + "." if mod_name else ""
            for store, is_param in ((module._parameters, True), (module._buffers, False)):
                for attr, t in store.items():
                    n = prefix + attr
                    if n in tracked and n not in self._slots and t is tracked[n]:
                        self._slots[n] = (module, attr, is_param)
                    owner = by_id.get(id(t)) if t is not None else None
                    if owner is not None:
                        held.setdefault(owner, (module, attr, is_param))
        for n in tracked:
            if n not in self._slots and n in held:
                self._slots[n] = held[n]

    def current(self, name: str) -> torch.Tensor | None:
        """The tensor the model holds under ``name`` now (None: no slot known, or the slot was emptied)."""
        slot = self._slots.get(name)
        if slot is None:
            return None
        module, attr, is_param = slot
        return (module._parameters if is_param else module._buffers).get(attr)

    def names(self) -> list[str]:
        """The names whose slot is known."""
        return list(self._slots)


class FreshMemory:
    """Tensors allocated uninitialized (``torch.empty*``, ``to_empty``) inside recorded code, until written."""

    def __init__(self) -> None:
        # weak references to the storages (the tensor objects may die while the memory lives on in a
        # parameter: p.data = torch.empty_like(p))
        self._by_storage: dict[int, StorageWeakRef] = {}

    def add(self, t: torch.Tensor) -> None:
        """Remember ``t`` as uninitialized memory."""
        if isinstance(t, torch.Tensor) and not t.is_meta and not is_dtensor(t) and t.numel() > 0:
            self._by_storage[storage_id(t)] = StorageWeakRef(t.untyped_storage())

    def written(self, t: object) -> None:
        """Something wrote into ``t``'s memory: it is no longer garbage (partial writes count: torch's rules)."""
        if self._by_storage and isinstance(t, torch.Tensor) and not t.is_sparse:
            self._by_storage.pop(storage_id(t), None)

    def holds(self, t: torch.Tensor) -> bool:
        """Whether ``t``'s memory was allocated in the block and nothing has written it since."""
        ref = self._by_storage.get(storage_id(t))
        return ref is not None and not ref.expired()


class TrackedMemory:
    """The recorder's identity bookkeeping (a mixin of :class:`fastinit.record.Recorder`): which tracked tensor a
    tensor is, memory that moved (module attributes, ``.data``), and which tracked tensors have been written.

    Its state is the recorder's: ``by_storage``, ``views``, ``by_name``, ``_sid`` (name -> storage id), ``slots``,
    ``fresh``, ``written``, ``flushed`` and ``_coverage`` (name -> which elements of its storage were written).
    """

    def _target(self, t, follow: bool = False) -> tuple[Pending | None, bool]:
        """(the tracked tensor whose memory ``t`` views, whether ``t`` covers all of it).

        ``follow``: on a miss, look for memory replaced since (module attributes) before giving up.
        """
        if not isinstance(t, torch.Tensor) or t.is_sparse:
            return None, False
        p = self._lookup(t)
        # memory allocated inside the block is no tracked tensor yet (one installed later, register_buffer, is
        # found by the last refresh): no need to look
        if p is None and follow and not self.fresh.holds(t) and self._refresh():
            p = self._lookup(t)
        if p is None:
            return None, False
        return p, covers(t, p.tensor)

    def _lookup(self, t: torch.Tensor, sid: int | None = None) -> Pending | None:
        """The tracked tensor whose memory ``t`` views (``sid``: ``t``'s storage id, if known).

        In a storage holding several tracked tensors (``views``), the one ``t`` shares elements with. A ``t``
        spanning several of them (the flat buffer itself) is written only after they are: each is written now
        (flushed) and None is returned, so the call runs on their real values; an init call on it is refused
        (:meth:`_refuse_spanning`), since no one tensor's stream could give its values.
        """
        if sid is None:
            sid = storage_id(t)
        p = self.by_storage.get(sid)
        if p is None or not self.views or sid not in self.views:
            return p
        hits = self._view_hits(t, sid)
        if len(hits) == 1:
            return hits[0]
        for q in hits:
            self._flush(q)
        return None

    def _view_hits(self, t: torch.Tensor, sid: int) -> list[Pending]:
        """The tracked tensors of storage ``sid`` (one of ``views``) that share an element with ``t``."""
        return [q for q in self.views[sid] if views_share_memory(t, q.tensor)] if _has_elements(t) else []

    def _in_views(self, t: torch.Tensor) -> bool:
        """Whether ``t``'s storage holds several tracked tensors (its memory is theirs, never a temporary)."""
        return bool(self.views) and storage_id(t) in self.views

    def _refuse_spanning(self, t: torch.Tensor, call: str) -> None:
        """Raise for random write ``call`` on memory holding several tracked tensors (a flat buffer they view)."""
        if not isinstance(t, torch.Tensor) or t.is_sparse or not self._in_views(t):
            return
        hits = [q.name for q in self._view_hits(t, storage_id(t))]
        if len(hits) > 1:
            raise NotImplementedError(
                f"fastinit: {call} on memory that holds several parameters ({', '.join(hits)}: views of one "
                "buffer) has no one tensor's values to give; initialize each of them on its own")

    def _mark_written(self, p: Pending | None, view: torch.Tensor, whole: bool) -> None:
        """``view`` of ``p`` was written now, eagerly: ``p`` counts as written once every element has been."""
        self.fresh.written(view)
        if p is None or p.temporary or p.name in self.written:
            return
        if whole:
            self.written.add(p.name)
            self._coverage.pop(p.name, None)
            return
        if is_dtensor(view) or view.is_meta:
            return
        base = local_tensor(p.tensor)  # a DTensor's shard is written through its local tensor (OLMo-core)
        if base is not p.tensor and covers(view, base):
            self.written.add(p.name)
            return
        with torch.no_grad():
            n = base.untyped_storage().nbytes() // max(base.element_size(), 1)
            mask = self._coverage.get(p.name)
            if mask is None or mask.numel() != n:
                mask = self._coverage[p.name] = torch.zeros(n, dtype=torch.bool)
            mask.as_strided(view.shape, view.stride(), view.storage_offset()).fill_(True)
            if mask.as_strided(base.shape, base.stride(), base.storage_offset()).all():
                self.written.add(p.name)
                del self._coverage[p.name]

    def _after_write(self, p: Pending | None, func, args, whole: bool) -> None:
        first = args[0]
        if p is None or func is not _SETITEM:
            self._mark_written(p, first, whole)
            return
        region = first[args[1]]  # w[i] = v: mark what a view indexes (advanced indexing copies: not counted)
        if storage_id(region) == storage_id(first):
            self._mark_written(p, region, covers(region, p.tensor))

    def _repoint(self, p: Pending, t: torch.Tensor) -> None:
        """``p``'s name now holds ``t`` (or ``p.tensor``'s memory was replaced): track the new memory."""
        old = self._sid.get(p.name)
        views = self.views.get(old) if old is not None else None
        if views is not None and p in views:  # one of several tensors in that storage: the others stay
            views.remove(p)
            self.by_storage[old] = views[0]
            if len(views) == 1:
                del self.views[old]
        elif old is not None and self.by_storage.get(old) is p:
            del self.by_storage[old]
        p.tensor = t
        p.spec, p.post_ops, p.seed, p.shadow = None, [], None, None  # what the old memory would have held is gone
        self.written.discard(p.name)
        self.flushed.discard(p.name)
        self._coverage.pop(p.name, None)
        sid = storage_id(t)
        other = self.by_storage.get(sid)
        if other is not None and other.temporary and covers(t, other.tensor):
            # the code initialized a tensor of its own and installed it (register_buffer, p.data = tmp)
            p.spec, p.post_ops, p.seed = other.spec, other.post_ops, other.seed
            if p.spec is None:
                self.written.add(p.name)  # the temporary was written already (read, so flushed, or copied into)
            other.spec, other.post_ops = None, []
            self._forget(other)
        elif other is not None:
            self._sid.pop(p.name, None)  # an alias of another tracked tensor: that one's entry writes the memory
            return
        elif not self.fresh.holds(t) and not t.is_meta:
            self.written.add(p.name)  # values the code computed (a rotary cache, p.data = torch.log(A)): its own
        self.by_storage[sid], self._sid[p.name] = p, sid

    def _refresh(self, check_storage: bool = False) -> bool:
        """Follow module attributes that now hold other tensors (or other memory); True if any did."""
        moved = False
        for name in self.slots.names():
            p = self.by_name[name]
            cur = self.slots.current(name)
            if cur is None:
                continue
            if cur is not p.tensor or (check_storage and self._sid.get(name) is not None
                                       and storage_id(cur) != self._sid[name]):
                self._repoint(p, cur)
                moved = True
        return moved

    def _set_data(self, func, args, kwargs):
        """``t.data = new``: the tensor object stays, its memory is ``new``'s."""
        target = args[0] if args else None
        p = self._lookup(target) if isinstance(target, torch.Tensor) and not target.is_sparse else None
        if p is not None and p.tensor is not target:
            p = None  # a view's or an alias's .data: the tracked tensor keeps its memory
        out = func(*args, **kwargs)
        if p is not None:
            self._repoint(p, target)
        return out
