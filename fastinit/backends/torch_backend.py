"""The ``torch`` backend: plain ``torch.nn.init`` with torch's own RNG, one call per tensor.

It is the fallback for what has no fused form (orthogonal, sparse, non-floating dtypes) and the
baseline the benchmarks compare against. Its values do not follow the fastinit stream.
"""

from __future__ import annotations

from .base import Backend


class TorchBackend(Backend):
    """Runs each entry's spec through ``torch.nn.init`` with a generator seeded from (seed, key)."""

    name = "torch"
    fused = False

    def reasons(self, device, dtype, kind):
        return []
