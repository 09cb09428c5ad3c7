"""Fake (meta) kernel of ``fastinit::fill_group`` so tracing (torch.compile, FakeTensor, opcheck) works."""

from __future__ import annotations

import torch

_registered = False


def register() -> None:
    """Register the fake kernel once, if the op exists (it only mutates ``outs``: nothing to compute)."""
    global _registered
    if _registered or not hasattr(torch.ops.fastinit, "fill_group"):
        return

    @torch.library.register_fake("fastinit::fill_group")
    def _fill_group_fake(outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
        return None

    _registered = True
