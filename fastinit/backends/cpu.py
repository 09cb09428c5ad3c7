"""The ``cpu`` backend: the C++ kernel (csrc/fill_cpu.cpp), one multi-threaded call per group."""

from __future__ import annotations

import torch

from .. import _ext
from .base import Backend


class CpuBackend(Backend):
    """Runs ``torch.ops.fastinit.fill_group`` on CPU tensors (all cores via at::parallel_for)."""

    name = "cpu"
    device_type = "cpu"

    def unavailable(self) -> str | None:
        """None when the compiled extension is loaded, else why it is not."""
        ok, why = _ext.load()
        return None if ok else why

    def fill(self, outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
        """Write the group in place (as ``fastinit.reference.fill_group_reference``, bit for bit)."""
        _ext.load()
        torch.ops.fastinit.fill_group(outs, table, params, seed)
