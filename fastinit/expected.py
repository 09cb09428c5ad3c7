"""Expected values of the deterministic parts of a tensor, for ``audit``: what torch.nn.init writes for a
constant/eye/dirac spec into a fresh tensor, and the partial constant writes a recording replays after a
spec (Embedding padding rows), replayed here on a CPU copy laid out as the meta stand-in they were
recorded against.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from .describe import EXACT_FAMILIES, Distribution
from .dryrun import PlannedTensor
from .sharding import global_index_sets

__all__ = ["NotReplayable", "expected_values", "local_slice"]


class NotReplayable(Exception):
    """A partial write recorded after a spec that cannot be replayed on a CPU copy."""


def _retarget(obj: Any, storage: int, base: torch.Tensor, hits: list[int]) -> Any:
    """``obj`` (a post op: nested partials) with every view of the stand-in's memory made the same view of ``base``."""
    if isinstance(obj, torch.Tensor) and obj.is_meta and obj.untyped_storage()._cdata == storage:
        hits.append(1)
        return base.as_strided(tuple(obj.shape), tuple(obj.stride()), obj.storage_offset())
    if isinstance(obj, functools.partial):
        return functools.partial(_retarget(obj.func, storage, base, hits),
                                 *(_retarget(a, storage, base, hits) for a in obj.args),
                                 **{k: _retarget(v, storage, base, hits) for k, v in obj.keywords.items()})
    if isinstance(obj, (list, tuple)):
        return type(obj)(_retarget(x, storage, base, hits) for x in obj)
    return obj


def _exact_values(dist: Distribution, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """What torch.nn.init writes for a deterministic spec into a fresh tensor."""
    t = torch.empty(shape, dtype=dtype)
    if dist.family == "constant":
        torch.nn.init.constant_(t, dist.numbers["val"])
    elif dist.family == "eye":
        torch.nn.init.eye_(t)
    else:
        torch.nn.init.dirac_(t, int(dist.numbers["groups"]))
    return t


def expected_values(p: PlannedTensor, dist: Distribution) -> torch.Tensor | None:
    """The global tensor of expected values: exact ones where they are determined, NaN where random.

    None when nothing is determined (a random spec without partial writes). The partial writes recorded
    against the meta stand-in are replayed on a CPU tensor with the stand-in's strides.
    """
    ops = p.final_post_ops
    exact = dist.family in EXACT_FAMILIES
    if not exact and not ops:
        return None
    s = p.stand_in
    base = torch.full((max(s.untyped_storage().nbytes() // s.element_size(), 1),), math.nan, dtype=s.dtype)
    view = base.as_strided(tuple(s.shape), tuple(s.stride()), s.storage_offset())
    with torch.no_grad():
        if exact:
            view.copy_(_exact_values(dist, tuple(s.shape), s.dtype))
        for op in ops:
            hits: list[int] = []
            moved = _retarget(op, s.untyped_storage()._cdata, base, hits)
            if not isinstance(op, functools.partial) or not hits:
                raise NotReplayable(f"a partial write after the spec cannot be replayed ({op!r})")
            moved()
    return view if view.is_contiguous() else view.contiguous()  # a fresh buffer already: no second copy


def local_slice(global_values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The part of a global-shaped tensor that ``t`` (a DTensor) holds on this rank; ``global_values`` otherwise."""
    sets = global_index_sets(t)
    if sets is None:
        return global_values
    for d, idx in enumerate(sets):
        global_values = global_values.index_select(d, idx)
    return global_values
