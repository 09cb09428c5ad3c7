"""``fastinit.apply``: the drop-in that initializes a whole model in one fused launch per (device, dtype)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from . import walk
from .keys import draw_seed, key_for
from .known_models import known_model_plan
from .plan import GroupReport, Plan
from .policy import resolve_policy, tracked_tensors
from .record import Pending, run_context
from .sharding import entries_for

_last_report: list[GroupReport] = []


def last_report() -> list[GroupReport]:
    """What the last :func:`apply` (or :func:`fastinit.recording` block) launched: one row per group.

    Rows for tensors the init code read while recording (written on the spot) come first.
    """
    return list(_last_report)


def _check_materialized(tracked: dict[str, torch.Tensor]) -> None:
    meta = [n for n, t in tracked.items() if t.is_meta]
    if meta:
        shown = ", ".join(meta[:5]) + (f" and {len(meta) - 5} more" if len(meta) > 5 else "")
        raise RuntimeError(
            f"{len(meta)} tensors are on the meta device ({shown}): they have no memory to initialize. "
            "Materialize them first: fastinit.materialize(model, device=...)."
        )


def full_prefix(prefix: str) -> str:
    """``prefix`` as it goes in front of a tensor's name: ``"layers.3"`` and ``"layers.3."`` give ``"layers.3."``."""
    return prefix if not prefix or prefix.endswith(".") else prefix + "."


def apply(model: nn.Module, policy: Any = "default", *, seed: int | None = None, backend: str = "auto",
          generator: torch.Generator | None = None, prefix: str = "") -> nn.Module:
    """Initialize every parameter (and floating buffer) of ``model`` as ``policy`` says; returns ``model``.

    The fused counterpart of ``model.apply(init_weights)`` / re-running each module's
    ``reset_parameters()``. ``policy`` is ``"default"`` (each module's own init), a preset name
    (``fastinit.PRESETS``), a :class:`fastinit.Rules`, or a callable ``fn(module)`` such as the
    ``init_weights`` you pass to ``model.apply``. ``seed`` None draws one from ``generator`` (torch's
    default generator when None). ``backend`` is ``"auto"`` or a name from ``fastinit.backends()``.
    Values depend only on (seed, parameter name, element index): not on device, backend or layout.
    ``prefix`` is ``model``'s name inside a larger model (``"layers.3"``): keys then come from the
    full names, so a submodule initialized alone gets the values it would get as part of the whole.
    """
    global _last_report
    # seed None is drawn only once the whole plan is validated: a refused call leaves the caller's RNG alone
    with _no_gc():
        if isinstance(policy, str) and policy == "default":
            plan = known_model_plan(model, full_prefix(prefix))  # torch's own modules only: nothing to record
            if plan is not None:
                _last_report = Writer(seed, backend, prefix, generator).write_plans([(None, plan)])
                return model
        with walk.one_walk(model):  # tracked tensors, slots, ties and scopes share one walk of the module tree
            tracked = tracked_tensors(model)
            _check_materialized(tracked)
            run_policy(model, policy, tracked, seed, backend, prefix=prefix, generator=generator)
    return model


class Writer:
    """Writes recorded specs: on the spot (a flush) or all at the end, validated as a whole first.

    ``seed`` None is drawn from ``generator`` the first time a value is needed. A pending tensor
    with its own seed (recorded with ``generator=``) is written with that seed.
    """

    def __init__(self, seed: int | None, backend: str = "auto", prefix: str = "",
                 generator: torch.Generator | None = None):
        self._seed, self._generator = seed, generator
        self.backend, self.prefix = backend, full_prefix(prefix)
        self.flushed: set[str] = set()
        self.reports: list[GroupReport] = []

    @property
    def drawn_seed(self) -> int | None:
        """The run's seed if it is known (given, or drawn because something was written), else None."""
        return self._seed

    @property
    def seed(self) -> int:
        """The run's seed (drawn now if it was left to ``generator``)."""
        if self._seed is None:
            self._seed = draw_seed(self._generator)
        return self._seed

    def flush(self, p: Pending) -> None:
        """Write ``p`` now (the recorded code reads it)."""
        self.flushed.add(p.name)
        self.reports += self._plan([p]).execute(self._seed_of(p), self.backend)

    def write(self, pending: list[Pending]) -> list[GroupReport]:
        """Validate every pending spec, then write them: one plan per seed (one unless ``generator=`` was used).

        The run's seed, if it is still to be drawn, is drawn after validation (and only if something is written).
        """
        by_seed: dict[int | None, list[Pending]] = {}  # None: the run's seed
        for p in pending:
            by_seed.setdefault(p.seed, []).append(p)
        return self.write_plans([(s, self._plan(ps)) for s, ps in by_seed.items()])

    def write_plans(self, plans: list[tuple[int | None, Plan]]) -> list[GroupReport]:
        """Validate every plan (each with its own seed; None: the run's), then write them, as :meth:`write`."""
        for _, plan in plans:
            plan.validate(self.backend)
        for s, plan in plans:
            if s is None:
                s = self.seed if any(e.tensor.numel() for e in plan.entries) else 0
            self.reports += plan.execute(s, self.backend)
        return self.reports

    def _seed_of(self, p: Pending) -> int:
        return p.seed if p.seed is not None else self.seed

    def _plan(self, pending: list[Pending]) -> Plan:
        return plan_of(pending, self.prefix)


def plan_of(pending: list[Pending], prefix: str = "") -> Plan:
    """The plan writing ``pending`` (not validated, nothing written); keys from ``prefix`` + each name."""
    return Plan([e for p in pending for e in
                 entries_for(p.name, p.tensor, p.spec, key_for(prefix + p.name), post_ops=p.post_ops)])


def run_policy(model: nn.Module, policy: Any, tracked: dict[str, torch.Tensor], seed: int | None, backend: str,
               check: Callable[[list[Pending], set[str]], None] | None = None, *, prefix: str = "",
               generator: torch.Generator | None = None, writer: Writer | None = None) -> list[Pending]:
    """Record ``policy`` on ``model`` and execute it as one plan; the pending specs it executed.

    A tensor the init code reads while recording is written on the spot (flushed) with the same
    values. ``check(pending, initialized_names)`` runs between recording and the fused write
    (materialize uses it to refuse parameters the policy leaves without a value); the names are
    those flushed or written in full by the init code itself (whole copies). ``prefix``: see :func:`apply`.
    ``seed`` None is drawn from ``generator`` when first needed: at a flush, else after validation.
    ``writer`` (optional) is the :class:`Writer` to write with (it then holds the seed and backend).
    """
    global _last_report
    writer = writer if writer is not None else Writer(seed, backend, prefix, generator)
    written: set[str] = set()
    with _no_gc():
        with run_context(model, written):  # also for recorders a policy makes itself (fastinit.hf)
            pending = resolve_policy(model, policy, tracked, writer.flush, written=written)
        if check is not None:
            check(pending, writer.flushed | written)
        _last_report = writer.write(pending)
    return pending


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    # Recording and planning allocate a few small objects per tensor and free almost none until the end: with
    # 10,000s of tensors, the cyclic collector's passes over them cost a third of the host time, and on a model
    # built just before (its modules still in the young generations) a first call's walks cost 10x more. The
    # garbage is collected as usual afterwards.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def set_last_report(reports: list[GroupReport]) -> None:
    """Record what a recording block launched, for :func:`last_report`."""
    global _last_report
    _last_report = list(reports)
