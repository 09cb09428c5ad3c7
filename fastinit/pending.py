"""What the recorder holds for each tensor it tracks: the recorded spec and the ops to replay after it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import specs as S


@dataclass(slots=True)
class Pending:
    """A tracked tensor's recorded spec and the write-only ops to replay after it."""

    name: str
    tensor: torch.Tensor
    spec: S.Spec | None = None
    post_ops: list[Callable[[], object]] = field(default_factory=list)
    # DTensors only: a meta tensor of the global shape standing in for views of the DTensor (see
    # Recorder._shadow_getitem), so that partial constant writes can be replayed on the local shard.
    shadow: torch.Tensor | None = None
    #: the stream seed for this tensor when the init call was given generator=g (g.initial_seed()); None: the run's
    seed: int | None = None
    #: a tensor the recorded code allocated itself (not a tracked one), or a part of a tracked one written on its own
    temporary: bool = False
    #: for a part of a tracked tensor written on its own (``normal_(w[:d])``): that tensor's name
    part_of: str | None = None


def generator_seed(generator: object) -> int | None:
    """The stream seed a recorded call given ``generator=`` writes with: ``generator.initial_seed()``.

    Deterministic and independent of call order and of how far the generator has advanced; the generator's
    state is not consumed.
    """
    if generator is None:
        return None
    return int(generator.initial_seed())
