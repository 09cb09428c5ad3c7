"""The ``cuda`` backend: the CUDA kernel (csrc/fill_cuda.cu), one kernel launch per group."""

from __future__ import annotations

import torch

from .. import _ext
from .base import Backend


class CudaBackend(Backend):
    """Runs ``torch.ops.fastinit.fill_group`` on CUDA tensors, where the extension was built with CUDA."""

    name = "cuda"
    device_type = "cuda"

    def unavailable(self) -> str | None:
        """None when the extension has a CUDA kernel and a GPU is usable, else why not."""
        ok, why = _ext.load()
        if not ok:
            return why
        if not torch._C._dispatch_has_kernel_for_dispatch_key("fastinit::fill_group", "CUDA"):
            return "fastinit._C was built without the CUDA kernel (CPU-only torch or no CUDA toolkit at build time)"
        if not torch.cuda.is_available():
            return "torch.cuda.is_available() is False"
        return None

    def fill(self, outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
        """Write the group in place with one launch on the current stream (bitwise as the reference)."""
        _ext.load()
        torch.ops.fastinit.fill_group(outs, table, params, seed)
