"""From a (possibly sharded) tensor to plan entries: the local block and its place in the global tensor.

A plain tensor is one entry covering global indices ``0 .. numel-1``. A ``DTensor`` (FSDP2's
``fully_shard``, tensor parallel's ``parallelize_module``, 2-D FSDP x TP, ``Replicate``) is written
through its local shard (``to_local()``, which shares the DTensor's memory), with the spec resolved
from the DTensor's *global* shape and each local element mapped to its global row-major index, so
every rank writes exactly the values of its slice of the unsharded tensor: no communication, no
full-tensor allocation.

The local shard of a DTensor is a Cartesian product of per-dimension sets of global indices (one
set per tensor dimension, produced by the placements that shard that dimension, in mesh order,
``_StridedShard`` included). Each set splits into runs of consecutive indices; each product of
runs is a box of the global tensor. A box maps to one :class:`~fastinit.tables.ShardMap`
(``BASE + (j // ROW_LEN) * ROW_STRIDE + j % ROW_LEN``) when at most one dimension before its last
partially covered one is wider than 1; otherwise it is split along its leading dimension into
sub-views of the local tensor, each its own entry.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence

import torch

from .plan import Entry
from .specs import Spec
from .tables import ShardMap

__all__ = ["is_dtensor", "local_tensor", "global_index_sets", "entries_for", "fill_global"]


def _dtensor_type() -> type | None:
    # No DTensor can exist unless torch.distributed.tensor was imported: importing it here would
    # cost seconds on every `import fastinit`.
    mod = sys.modules.get("torch.distributed.tensor")
    return getattr(mod, "DTensor", None) if mod is not None else None


def is_dtensor(t: object) -> bool:
    """Whether ``t`` is a ``torch.distributed.tensor.DTensor`` (without importing torch.distributed)."""
    cls = _dtensor_type()
    return cls is not None and isinstance(t, cls)


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The tensor holding ``t``'s memory on this rank: ``t.to_local()`` for a DTensor, ``t`` itself otherwise.

    Reads ``_local_tensor`` rather than calling ``to_local()`` so that no autograd node or
    TorchFunctionMode call (fastinit's Recorder) is involved; the two share memory.
    """
    return t._local_tensor if is_dtensor(t) else t  # type: ignore[attr-defined]


def global_index_sets(t: torch.Tensor) -> list[torch.Tensor] | None:
    """Per tensor dimension, the global index of each local position along it (int64, CPU); None if not sharded.

    The same computation as ``torch.distributed.tensor._utils.compute_local_shape_and_global_offset``,
    but keeping the whole index set (a ``_StridedShard`` can give a non-contiguous one). Raises for
    ``Partial`` placements: a partial sum has no per-element value to initialize.
    """
    if not is_dtensor(t):
        return None
    mesh = t.device_mesh
    coord = mesh.get_coordinate()
    shape = tuple(t.shape)
    idx = [torch.arange(n, dtype=torch.int64) for n in shape]
    if coord is None:  # this rank holds no part of the mesh, hence nothing
        return [i[:0] for i in idx]
    for mesh_dim, placement in enumerate(t.placements):
        if placement.is_partial():
            raise NotImplementedError(f"cannot initialize a DTensor with a Partial placement ({t.placements})")
        if not _is_shard_like(placement):
            continue  # Replicate: every rank holds the whole dimension
        d = placement.dim if placement.dim >= 0 else placement.dim + len(shape)
        # _split_tensor is the placement's own chunking (even/uneven, strided), applied in mesh order
        # exactly as distribute_tensor does; a [1]*d + [n] view lets it split tensor dim d.
        shaped = idx[d].reshape((1,) * d + (-1,))
        chunks, _ = placement._split_tensor(shaped, mesh.size(mesh_dim), with_padding=False)
        idx[d] = chunks[coord[mesh_dim]].reshape(-1)
    return idx


def _is_shard_like(placement) -> bool:
    # _StridedShard (FSDP2 over a tensor-parallel Shard(0)) is not a Shard subclass in every torch version
    return placement.is_shard() or type(placement).__name__ == "_StridedShard"


def _runs(index: torch.Tensor) -> list[tuple[int, int, int]]:
    """(local start, global start, length) of each run of consecutive global indices."""
    n = index.numel()
    if n == 0:
        return []
    breaks = (torch.nonzero(index[1:] - index[:-1] != 1).reshape(-1) + 1).tolist()
    starts = [0] + breaks
    ends = breaks + [n]
    first = index[starts].tolist()
    return [(s, g, e - s) for s, g, e in zip(starts, first, ends)]


def _box_maps(offsets: Sequence[int], sizes: Sequence[int], gshape: Sequence[int]) -> list[tuple[tuple, ShardMap]]:
    """(local index into the box, ShardMap) pieces covering a global box, in as few pieces as possible.

    ``offsets``/``sizes``: the box within a global tensor of shape ``gshape``. Each piece is a
    tuple of slices of the box (row-major order preserved) and the map of its elements.
    """
    n = len(gshape)
    gstride = [math.prod(gshape[d + 1:]) for d in range(n)]
    base = sum(o * s for o, s in zip(offsets, gstride))
    # p: the last partially covered dim; all later dims are whole, so each run along p is contiguous
    p = -1
    for d in range(n - 1, -1, -1):
        if sizes[d] != gshape[d]:
            p = d
            break
    if p < 0:
        return [(tuple(slice(None) for _ in range(n)), ShardMap(base, 0, 0))]
    row_len = sizes[p] * gstride[p]
    wide = [d for d in range(p) if sizes[d] > 1]
    if not wide:
        return [(tuple(slice(None) for _ in range(n)), ShardMap(base, 0, 0))]
    if len(wide) == 1:
        return [(tuple(slice(None) for _ in range(n)), ShardMap(base, row_len, gstride[wide[0]]))]
    q = wide[0]  # several wide outer dims: no single row stride; peel the first one off
    out = []
    for k in range(sizes[q]):
        sub_off = list(offsets)
        sub_off[q] += k
        sub_size = list(sizes)
        sub_size[q] = 1
        for sl, smap in _box_maps(sub_off, sub_size, gshape):
            sl = list(sl)
            sl[q] = slice(k, k + 1)
            out.append((tuple(sl), smap))
    return out


_PLAIN = (torch.nn.Parameter, torch.Tensor)


def entries_for(name: str, tensor: torch.Tensor, spec: Spec, key: int, post_ops: list | None = None) -> list[Entry]:
    """The plan entries writing ``spec`` into ``tensor`` (a plain tensor or a DTensor); post ops ride on the last.

    For a DTensor the entries write its local shard (sub-views of it when one map cannot
    describe the block) and carry ``global_shape`` so fans come from the unsharded shape.
    """
    ops = list(post_ops) if post_ops else ()
    if type(tensor) in _PLAIN or not is_dtensor(tensor):
        return [Entry(name, tensor, spec, key, post_ops=ops)]
    gshape = tuple(tensor.shape)
    local = local_tensor(tensor)
    sets = global_index_sets(tensor)
    assert sets is not None
    if tuple(local.shape) != tuple(len(s) for s in sets):
        raise RuntimeError(f"{name}: local shard shape {tuple(local.shape)} does not match its placements "
                           f"{tensor.placements} on mesh {tuple(tensor.device_mesh.shape)} (expected "
                           f"{tuple(len(s) for s in sets)})")
    if local.numel() == 0 or len(gshape) == 0:
        return [Entry(name=name, tensor=local, spec=spec, key=key, global_shape=gshape, post_ops=ops)]
    entries: list[Entry] = []
    per_dim = [_runs(s) for s in sets]
    for combo in _product(per_dim):
        box_local = tuple(slice(ls, ls + n) for ls, _, n in combo)
        offsets = [g for _, g, _ in combo]
        sizes = [n for _, _, n in combo]
        view = local[box_local]
        for sl, smap in _box_maps(offsets, sizes, gshape):
            entries.append(Entry(name=name, tensor=view[sl], spec=spec, key=key, global_shape=gshape, shard=smap))
    entries[-1].post_ops = ops
    return entries


def _product(per_dim: list[list]) -> list[tuple]:
    out: list[tuple] = [()]
    for runs in per_dim:
        out = [c + (r,) for c in out for r in runs]
    return out


# ---- partial constant writes on sharded tensors -----------------------------------------------

def fill_global(tensor: torch.Tensor, region: Callable[[torch.Tensor], torch.Tensor], value: float) -> None:
    """Set the elements ``region(global_view)`` of ``tensor`` to ``value``, for plain tensors and DTensors alike.

    ``region`` is an indexing function (``lambda w: w[padding_idx]``) applied to a meta tensor of
    the global shape; on a DTensor only the elements of this rank's shard are written, with no
    communication. The eager equivalent is ``region(tensor).fill_(value)`` on the unsharded tensor.
    """
    with torch.no_grad():
        if not is_dtensor(tensor):
            region(tensor).fill_(value)
            return
        local = local_tensor(tensor)
        gshape = tuple(tensor.shape)
        meta = torch.empty(gshape, dtype=local.dtype, device="meta")
        view = region(meta)
        if view.untyped_storage()._cdata != meta.untyped_storage()._cdata:
            raise NotImplementedError("fill_global: the region must be a view (basic indexing) of the tensor")
        flat = _flat_indices(view)
        if flat.numel() == 0:
            return
        sets = global_index_sets(tensor)
        assert sets is not None
        coords, keep = [], torch.ones(flat.numel(), dtype=torch.bool)
        rem = flat
        for d in range(len(gshape) - 1, -1, -1):
            c = rem % gshape[d]
            rem = rem // gshape[d]
            # global coordinate -> local position along d (-1: not on this rank)
            lookup = torch.full((gshape[d],), -1, dtype=torch.int64)
            lookup[sets[d]] = torch.arange(sets[d].numel(), dtype=torch.int64)
            pos = lookup[c]
            keep &= pos >= 0
            coords.append(pos)
        coords.reverse()
        if bool(keep.any()):
            local[tuple(c[keep].to(local.device) for c in coords)] = value


def _flat_indices(view: torch.Tensor) -> torch.Tensor:
    """Row-major flat indices (in its contiguous base) of every element of a view."""
    flat = torch.full((1,), view.storage_offset(), dtype=torch.int64)
    for size, stride in zip(view.shape, view.stride()):
        flat = (flat[:, None] + torch.arange(size, dtype=torch.int64)[None, :] * stride).reshape(-1)
    return flat
