"""What a constructor record cannot give faithfully, re-initialized by the owners' own init, recorded.

A record made under ``empty_init`` replays what constructors wrote, but two kinds of tensors have
no faithful value in it:

- *lost on the meta device*: ``self.A_log = nn.Parameter(torch.log(a))`` inside ``reset_parameters``
  registers a computed value that goes to meta as it is registered;
- *drawn from torch's RNG*: a temporary the constructor read before copying it in (a fused qkv
  built with ``torch.cat`` of q/k/v temporaries) had to be written eagerly with torch's init, and
  ``torch.randn`` in a constructor is torch's too; replaying those values would follow
  ``torch.manual_seed``, not ``seed=``.

For those tensors ``materialize`` records their owner modules' default init
(``reset_parameters``, as the apply path's ``"default"`` does, see
:func:`fastinit.policy.record_owner_defaults`) on the allocated model: temporaries get fastinit's
stream with deterministic keys, a whole copy counts as written, and for modules whose constructor
only runs ``reset_parameters`` the values are bitwise ``fastinit.apply(model, seed=seed)``'s. What
that init does not cover keeps its record: drawn values are replayed with a ``RuntimeWarning``
naming them (torch's RNG is then the only way to give eager's values), lost ones stay refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from .apply import Writer, plan_of
from .construct_log import Slot
from .plan import GroupReport
from .policy import record_owner_defaults, tracked_tensors
from .record import Pending
from .ties import record_untied


@dataclass
class Reinit:
    """The recorded default init of the tensors a constructor record cannot give faithfully."""

    writer: Writer | None = None
    pending: list[Pending] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)  # names that init gives a value (spec, whole write or flush)
    drawn: list[str] = field(default_factory=list)  # names whose record holds torch's RNG values, not covered

    def skip(self, slots: dict[Slot, str]) -> frozenset[Slot]:
        """The slots whose record is replaced by this init."""
        return frozenset(slot for slot, name in slots.items() if name in self.covered)

    def validate(self, backend: str) -> None:
        """Raise what writing it would raise, before anything is written."""
        if self.pending:
            plan_of(self.pending).validate(backend)

    def write(self) -> list[GroupReport]:
        """Write it fused; the launches, flushes made while recording first."""
        return self.writer.write(self.pending) if self.writer is not None else []


def unfaithful(slots: dict[Slot, str]) -> dict[str, str]:
    """Names whose constructor record gives no faithful value, each with why ("lost" or "drawn")."""
    out: dict[str, str] = {}
    for slot, name in slots.items():
        if slot.broken:
            continue  # materialize refuses these whatever else happens
        if not slot.valued:
            out[name] = "lost"
        elif slot.torch_rng:
            out[name] = "drawn"
    return out


def reinit_unfaithful(model: nn.Module, slots: dict[Slot, str], device: torch.device, seed: int,
                      backend: str) -> Reinit:
    """Record the owners' default init of every tensor of ``unfaithful(slots)`` on the allocated ``model``.

    Nothing of the model is written, except what that init code reads (flushed, as in
    :func:`fastinit.apply`). It runs under ``torch.device(device)``, as eager construction on
    ``device`` would, so a parameter it makes anew (``nn.Parameter(torch.log(a))``) lands there.
    """
    why = unfaithful(slots)
    if not why:
        return Reinit()
    wanted = set(why)
    writer = Writer(seed, backend)
    written: set[str] = set()
    with torch.device(device):
        pending = record_untied(model, tracked_tensors(model), writer.flush,
                                lambda tr, fl: record_owner_defaults(model, wanted, tr, fl, written))
    covered = ({p.name for p in pending} | written | writer.flushed) & wanted
    drawn = [n for n, w in why.items() if w == "drawn" and n not in covered]
    return Reinit(writer, pending, covered, drawn)


def warn_drawn(names: list[str]) -> None:
    """Say loudly that these tensors' values are torch's RNG draws replayed (they follow ``torch.manual_seed``)."""
    if names:
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        warnings.warn("fastinit.materialize: the constructors wrote these parameters from values drawn from torch's "
                      "RNG (a temporary read before it was copied in, torch.randn, ...), and no reset_parameters "
                      "of their modules gives them a value fastinit can record instead; they get eager "
                      "construction's values, which follow torch.manual_seed, not seed= (initialize them with "
                      f"fastinit.init.* or a reset_parameters method to get fastinit's stream): {shown}",
                      RuntimeWarning, stacklevel=3)
