"""Identity: which tracked tensor a view or a storage belongs to, and where a model keeps each tensor.

A tensor's identity while recording is its memory (tied weights share it; a view of a weight is the
weight). But init code can replace that memory (``self.to_empty(device)``, ``p.data =
torch.empty_like(p)``, ``self.inv_freq = ...``): the model's tensor is then another one. So each
tracked name also remembers its *slot*, the (module, attribute) that holds it, and the recorder
follows the slot (:class:`Slots`) rather than the old memory.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

from .sharding import is_dtensor, local_tensor


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


class Slots:
    """name -> the (module, attribute) holding that tensor in ``model``, for the tracked names."""

    def __init__(self, model: nn.Module | None, names: list[str]):
        self._slots: dict[str, tuple[nn.Module, str, bool]] = {}
        if model is None:
            return
        wanted = set(names)
        for mod_name, module in model.named_modules(remove_duplicate=False):
            prefix = mod_name + "." if mod_name else ""
            for attr in module._parameters:
                n = prefix + attr
                if n in wanted and n not in self._slots:
                    self._slots[n] = (module, attr, True)
            for attr in module._buffers:
                n = prefix + attr
                if n in wanted and n not in self._slots:
                    self._slots[n] = (module, attr, False)

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
