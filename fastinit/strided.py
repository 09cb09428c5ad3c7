"""Writing a fused distribution into a non-contiguous tensor in bounded chunks, never a full-size temporary.

Kernels write row-major contiguous memory. A strided tensor is cut into blocks that are contiguous
runs of its row-major (flat) index space: all of its trailing dimensions from some dimension ``d`` on,
a range of indices along ``d``, one index for every dimension before ``d``, with ``d`` the first
dimension whose trailing block fits in ``CHUNK_ELEMENTS``. Each block is generated into one reused
contiguous buffer of at most ``CHUNK_ELEMENTS`` elements (its flat offset goes into the table's
BASE column, so the values are those of the whole tensor) and copied into the tensor's strided view.
"""

from __future__ import annotations

import itertools
import math

import torch

from .backends.base import Backend
from .tables import Resolved, ShardMap, build_tables, to_signed64

CHUNK_ELEMENTS = 1 << 24  # elements of the one temporary buffer (64 MiB in float32)


def chunks(shape: tuple[int, ...], limit: int) -> list[tuple[tuple, int]]:
    """(index into the tensor, flat row-major offset of its first element) for each block of ``shape``."""
    rowmajor = [math.prod(shape[k + 1:]) for k in range(len(shape))]
    d = next(k for k in range(len(shape)) if rowmajor[k] <= limit)
    step = max(1, limit // rowmajor[d])
    out = []
    for prefix in itertools.product(*(range(n) for n in shape[:d])):
        start = sum(p * r for p, r in zip(prefix, rowmajor))
        for j in range(0, shape[d], step):
            out.append((prefix + (slice(j, min(j + step, shape[d])),), start + j * rowmajor[d]))
    return out


def write_strided(backend: Backend, t: torch.Tensor, key: int, resolved: Resolved, shard: ShardMap, seed: int,
                  limit: int | None = None) -> None:
    """Write ``t`` (non-contiguous, non-empty) as the contiguous kernel would write ``t.contiguous()``."""
    limit = CHUNK_ELEMENTS if limit is None else limit
    if shard.row_len > 0 and shard.row_len < t.numel():  # a multi-run shard map: one block, as before
        limit = t.numel()
    buf = torch.empty(min(limit, t.numel()), dtype=t.dtype, device=t.device)
    for index, offset in chunks(tuple(t.shape), limit):
        view = t[index]
        out = buf[:view.numel()].view(view.shape)
        table, params = build_tables([(out.numel(), key, resolved, ShardMap(shard.base + offset))], t.dtype)
        backend.fill([out], table, params, to_signed64(seed))
        view.copy_(out)
