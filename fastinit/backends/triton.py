"""The ``triton`` backend: the Triton kernel of fastinit/kernels/triton_fill.py, one launch per group."""

from __future__ import annotations

import torch

from ..kernels import triton_fill
from .base import Backend


class TritonBackend(Backend):
    """Runs ``torch.ops.fastinit.fill_group_triton`` on CUDA tensors (CPU tensors under ``TRITON_INTERPRET=1``)."""

    name = "triton"

    def unavailable(self) -> str | None:
        """None when triton imports, else why not."""
        return triton_fill.TRITON_ERROR

    def reasons(self, device: torch.device, dtype: torch.dtype, kind: int | None) -> list[str]:
        """Base reasons plus: CUDA tensors only, except CPU tensors when the Triton interpreter is on."""
        why = super().reasons(device, dtype, kind)
        dev = torch.device(device).type
        if triton_fill.interpreting():
            if dev != "cpu":
                why.append(f"under TRITON_INTERPRET=1 the triton backend takes CPU tensors only, not {dev}")
        elif dev != "cuda":
            why.append(f"the triton backend takes CUDA tensors only, not {dev} (set TRITON_INTERPRET=1 to run "
                       "the kernel on CPU tensors through the Triton interpreter)")
        elif not torch.cuda.is_available():
            why.append("torch.cuda.is_available() is False")
        return why

    def fill(self, outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
        """Write the group in place with one kernel launch (bitwise as the reference)."""
        torch.ops.fastinit.fill_group_triton(outs, table, params, seed)
