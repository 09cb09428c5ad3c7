"""What a constructor record cannot give faithfully, re-initialized by the owners' own init, recorded.

A record made under ``empty_init`` replays what constructors wrote, but two kinds of tensors have
no faithful value in it:

- *lost on the meta device*: ``self.A_log = nn.Parameter(torch.log(a))`` inside ``reset_parameters``
  registers a computed value that goes to meta as it is registered;
- *drawn from torch's RNG*: a temporary the constructor read before copying it in (a fused qkv
  built with ``torch.cat`` of q/k/v temporaries) had to be written eagerly with torch's init, and
  ``torch.randn`` in a constructor is torch's too; replaying those values would follow
  ``torch.manual_seed``, not ``seed=``.

When every write of such a tensor was made inside one default init (the construct recorder notes
the init frames of each write, :func:`fastinit.construct_log.init_frames`), ``materialize``
records that init again on the allocated model with the apply path's recorder: the owner's
``reset_parameters`` (as ``"default"`` does, :func:`fastinit.policy.record_owner_defaults`) or a
transformers model's ``_init_weights`` (as ``"hf"`` does). Temporaries get fastinit's stream with
deterministic keys, a whole copy counts as written, and for modules whose constructor only runs
``reset_parameters`` the values are bitwise ``fastinit.apply(model, seed=seed)``'s. Anything else
keeps its record: drawn values are replayed with a ``RuntimeWarning`` naming them (torch's RNG is
then the only way to give eager's values), lost ones stay refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .apply import Writer, plan_of
from .construct_log import Slot
from .hf import hf_init
from .plan import GroupReport
from .policy import keeps, record_owner_defaults, tracked_tensors
from .record import Pending, Recorder
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


def written_by(slot: Slot, owner: nn.Module) -> str | None:
    """Which default init wrote everything the record holds for ``slot``, if one did.

    ``"reset"``: the owner's own ``reset_parameters`` (re-run alone); ``"hf"``: a transformers
    ``_init_weights`` (the model's HF init is re-run). A write made anywhere else (the constructor
    body, another module's init) would be lost by re-running the init, so then None.
    """
    frames = [op.inits for op in slot.ops if op.live]
    if slot.registered_in is not None:
        frames.append(slot.registered_in)
    if not frames:
        return None
    if all(any(kind == "reset" and m is owner for kind, m in f) for f in frames):
        return "reset"
    if all(any(kind == "hf" for kind, _ in f) for f in frames):
        return "hf"
    return None


def reinit_unfaithful(model: nn.Module, slots: dict[Slot, str], device: torch.device, writer: Writer) -> Reinit:
    """Record the default init that wrote each tensor of ``unfaithful(slots)``, on the allocated ``model``.

    Nothing of the model is written, except what that init code reads (flushed, as in
    :func:`fastinit.apply`). It runs under ``torch.device(device)``, as eager construction on
    ``device`` would, so a parameter it makes anew (``nn.Parameter(torch.log(a))``) lands there. ``writer``
    writes it (and holds the run's seed, drawn when first needed).
    """
    why = unfaithful(slots)
    if not why:
        return Reinit()
    by_name = {name: slot for slot, name in slots.items()}
    wanted: dict[str, set[str]] = {"reset": set(), "hf": set()}
    for name in why:
        kind = written_by(by_name[name], model.get_submodule(name.rpartition(".")[0]))
        if kind is not None:
            wanted[kind].add(name)
    written: set[str] = set()
    pending: list[Pending] = []
    with torch.device(device):
        if wanted["reset"]:
            pending += record_untied(model, tracked_tensors(model), writer.flush,
                                     lambda tr, fl: record_owner_defaults(model, wanted["reset"], tr, fl, written))
        if wanted["hf"]:
            pending += _record_hf_for(model, wanted["hf"], writer.flush, written)
    covered = ({p.name for p in pending} | written | writer.flushed) & (wanted["reset"] | wanted["hf"])
    drawn = [n for n, w in why.items() if w == "drawn" and n not in covered]
    return Reinit(writer, pending, covered, drawn)


def _record_hf_for(model: nn.Module, wanted: set[str], flush: Callable[[Pending], None],
                   written: set[str]) -> list[Pending]:
    """A transformers model's whole HF init (as ``"hf"`` records it, so temporaries keep their keys), kept for
    ``wanted`` names only."""
    by_hf: set[str] = set()

    def record(tr: dict[str, torch.Tensor], fl: Callable[[Pending], None]) -> list[Pending]:
        rec = Recorder(tr, lambda p: fl(p) if keeps(wanted, p) else None, model=model, written=by_hf)
        with rec:
            hf_init(model)
        return rec.recorded()

    out = [p for p in record_untied(model, tracked_tensors(model), flush, record) if keeps(wanted, p)]
    written.update(by_hf & wanted)
    return out


def warn_drawn(names: list[str]) -> None:
    """Say loudly that these tensors' values are torch's RNG draws replayed (they follow ``torch.manual_seed``)."""
    if names:
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        warnings.warn("fastinit.materialize: the constructors wrote these parameters from values drawn from torch's "
                      "RNG (a temporary read before it was copied in, torch.randn, ...), and no reset_parameters "
                      "of their modules gives them a value fastinit can record instead; they keep the values "
                      "torch's RNG drew while constructing (eager's distribution), which follow torch.manual_seed, "
                      "not seed= (initialize them with "
                      f"fastinit.init.* or a reset_parameters method to get fastinit's stream): {shown}",
                      RuntimeWarning, stacklevel=3)
