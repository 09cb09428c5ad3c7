"""``fastinit.apply``: the drop-in that initializes a whole model in one fused launch per (device, dtype)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .keys import draw_seed, key_for
from .plan import GroupReport, Plan
from .policy import resolve_policy, tracked_tensors
from .record import Pending
from .sharding import entries_for

_last_report: list[GroupReport] = []


def last_report() -> list[GroupReport]:
    """What the last :func:`apply` launched: one row per (device, dtype, backend) group."""
    return list(_last_report)


def _check_materialized(tracked: dict[str, torch.Tensor]) -> None:
    meta = [n for n, t in tracked.items() if t.is_meta]
    if meta:
        shown = ", ".join(meta[:5]) + (f" and {len(meta) - 5} more" if len(meta) > 5 else "")
        raise RuntimeError(
            f"{len(meta)} tensors are on the meta device ({shown}): they have no memory to initialize. "
            "Materialize them first: fastinit.materialize(model, device=...)."
        )


def apply(model: nn.Module, policy: Any = "default", *, seed: int | None = None, backend: str = "auto",
          generator: torch.Generator | None = None) -> nn.Module:
    """Initialize every parameter (and floating buffer) of ``model`` as ``policy`` says; returns ``model``.

    The fused counterpart of ``model.apply(init_weights)`` / re-running each module's
    ``reset_parameters()``. ``policy`` is ``"default"`` (each module's own init), a preset name
    (``fastinit.PRESETS``), a :class:`fastinit.Rules`, or a callable ``fn(module)`` such as the
    ``init_weights`` you pass to ``model.apply``. ``seed`` None draws one from ``generator`` (torch's
    default generator when None). ``backend`` is ``"auto"`` or a name from ``fastinit.backends()``.
    Values depend only on (seed, parameter name, element index): not on device, backend or layout.
    """
    tracked = tracked_tensors(model)
    _check_materialized(tracked)  # before drawing a seed: a refused call leaves the caller's RNG alone
    run_policy(model, policy, tracked, draw_seed(generator) if seed is None else seed, backend)
    return model


def run_policy(model: nn.Module, policy: Any, tracked: dict[str, torch.Tensor], seed: int, backend: str,
               check: Callable[[list[Pending], set[str]], None] | None = None) -> list[Pending]:
    """Record ``policy`` on ``model`` and execute it as one plan; the pending specs it executed.

    A tensor the init code reads while recording is written on the spot (flushed) with the same
    values. ``check(pending, flushed_names)`` runs between recording and the fused write (materialize
    uses it to refuse parameters the policy leaves without a value).
    """
    global _last_report
    flushed: set[str] = set()

    def flush(p: Pending) -> None:
        flushed.add(p.name)
        _plan([p]).execute(seed, backend)

    pending = resolve_policy(model, policy, tracked, flush)
    if check is not None:
        check(pending, flushed)
    _last_report = _plan(pending).execute(seed, backend)
    return pending


def _plan(pending: list[Pending]) -> Plan:
    return Plan([e for p in pending
                 for e in entries_for(p.name, p.tensor, p.spec, key_for(p.name), post_ops=p.post_ops)])
