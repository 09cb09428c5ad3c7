"""From a (possibly sharded) tensor to a plan entry: the local block and its place in the global tensor."""

from __future__ import annotations

import torch

from .plan import Entry
from .specs import Spec


def entry_for(name: str, tensor: torch.Tensor, spec: Spec, key: int, post_ops: list | None = None) -> Entry:
    """The plan entry writing ``spec`` into ``tensor``. Plain tensors map one to one."""
    return Entry(name=name, tensor=tensor, spec=spec, key=key, post_ops=list(post_ops or []))
