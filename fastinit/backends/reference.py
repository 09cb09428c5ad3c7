"""The ``reference`` backend: the stream in plain PyTorch, on any device (slow, exact)."""

from __future__ import annotations

import torch

from ..reference import fill_group_reference
from .base import Backend


class ReferenceBackend(Backend):
    """Runs :func:`fastinit.reference.fill_group_reference`; always available."""

    name = "reference"

    def fill(self, outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
        fill_group_reference(outs, table, params, seed)
