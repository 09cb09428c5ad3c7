"""Replay: what the recorder keeps to run after (or instead of) a fused write.

- write-only partial ops on a pending tensor (``weight[pad].zero_()``, ``w[0] = 1.0``) are kept as
  *post ops* and replayed after the fused write, in order;
- on a sharded DTensor such a write goes through a global-shaped meta *shadow* and is replayed on the
  local shard (:func:`partial_fill`);
- whole-tensor ``fill_``/``zero_``/``uniform_``/``normal_`` calls become specs (:func:`spec_from_method`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from . import specs as S
from .identity import storage_id
from .sharding import fill_global

if TYPE_CHECKING:
    from .record import Pending

FILL, ZERO = torch.Tensor.fill_, torch.Tensor.zero_
UNIFORM, NORMAL = torch.Tensor.uniform_, torch.Tensor.normal_
SETITEM, COPY = torch.Tensor.__setitem__, torch.Tensor.copy_

_UNIFORM_SIG = inspect.signature(lambda a=0.0, b=1.0, *, generator=None: None)
_NORMAL_SIG = inspect.signature(lambda mean=0.0, std=1.0, *, generator=None: None)


def write_only(func, args, kwargs) -> bool:
    """Ops that overwrite part of a tensor with a constant, reading nothing of it."""
    if func is ZERO:
        return True
    if func is FILL:
        return len(args) > 1 and isinstance(args[1], (bool, int, float))
    if func is SETITEM:
        return len(args) > 2 and isinstance(args[2], (bool, int, float))
    return False


def spec_from_method(func, args, kwargs) -> tuple[S.Spec | None, torch.Generator | None]:
    """A whole-tensor ``fill_``/``zero_``/``uniform_``/``normal_`` as (spec, its generator=); (None, None) otherwise."""
    if func is ZERO:
        return S.Constant(0.0), None
    if func is FILL and len(args) > 1 and isinstance(args[1], (bool, int, float)):
        return S.Constant(float(args[1])), None
    if func is UNIFORM:
        bound = _UNIFORM_SIG.bind(*args[1:], **_rename(kwargs))
        bound.apply_defaults()
        return S.Uniform(float(bound.arguments["a"]), float(bound.arguments["b"])), bound.arguments["generator"]
    if func is NORMAL:
        bound = _NORMAL_SIG.bind(*args[1:], **kwargs)
        bound.apply_defaults()
        return S.Normal(float(bound.arguments["mean"]), float(bound.arguments["std"])), bound.arguments["generator"]
    return None, None


def _rename(kwargs: dict) -> dict:
    out = dict(kwargs)
    if "from" in out:
        out["a"] = out.pop("from")
    if "to" in out:
        out["b"] = out.pop("to")
    return out


def is_shadow(p: Pending, t) -> bool:
    """Whether ``t`` is a view of ``p``'s meta shadow (a DTensor's stand-in for its views)."""
    return p.shadow is not None and isinstance(t, torch.Tensor) and t.is_meta and storage_id(t) == storage_id(p.shadow)


def shadow_error(p: Pending) -> NotImplementedError:
    """The refusal for a partial read of a sharded DTensor that has a recorded spec."""
    return NotImplementedError(
        f"{p.name} is a sharded DTensor with a recorded spec, and the init code reads part of it "
        "(e.g. w[i].mul_(2)). fastinit replays only constant writes to parts of a sharded tensor; "
        "initialize it with a policy of specs (fastinit.Rules) or without the partial read.")


def partial_fill(p: Pending, view, index, value, eager: Callable[[], object]) -> Callable[[], object]:
    """The post op writing constant ``value`` into ``view`` (or ``view[index]``) of a pending tensor.

    ``eager`` is the recorded call itself, replayed as is on a plain tensor; on a DTensor's shadow the
    region is replayed on the local shard by :func:`fill_global`.
    """
    if not is_shadow(p, view):
        return eager
    shape, stride, offset = tuple(view.shape), tuple(view.stride()), view.storage_offset()

    def region(g: torch.Tensor) -> torch.Tensor:
        v = g.as_strided(shape, stride, offset)
        return v[index] if index is not None else v

    return functools.partial(fill_global, p.tensor, region, float(value))
