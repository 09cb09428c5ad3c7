"""Tied weights: which module's init a tied tensor ends with, and ties a model declares.

Eager construction initializes each module's own parameter, then ties: the tensor that survives
holds the init of the module that *created* it. After the fact (``fastinit.apply`` on a built
model) the creator is known only where the model declares its ties (transformers'
``{target: source}`` tied-weights keys: the source is the creator); otherwise the first owner in
module order is taken, which is the creator in the usual ``head.weight = embedding.weight`` pattern,
and a warning names the tensor when another owner's init would have given different values.

While a policy is recorded, every other owner (a *loser*) holds a meta stand-in of the same
shape, so its init is recorded on the stand-in (compared, then dropped) and not on the tied tensor.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from . import walk
from .record import Pending

#: suffix of the names stand-ins are tracked under while recording (never a real parameter name)
STAND_IN = "\x00tied"


@dataclass
class Tie:
    """One Parameter held by several modules: who wins, who loses, and whether that was declared."""

    param: nn.Parameter
    winner: str  # qualified name whose module's init the tensor keeps
    losers: list[tuple[nn.Module, str, str]] = field(default_factory=list)  # (module, attribute, qualified name)
    declared: bool = False


def declared_ties(model: nn.Module) -> dict[str, str]:
    """``{target: source}`` names the model declares tied (transformers' expanded keys, or ``_tied_weights_keys``)."""
    from .hf import is_hf_model

    if is_hf_model(model):
        try:
            return dict(model.get_expanded_tied_weights_keys(all_submodels=True))
        except Exception:  # older transformers: no expanded mapping
            return dict(getattr(model, "all_tied_weights_keys", None) or {})
    keys = getattr(model, "_tied_weights_keys", None)
    return dict(keys) if isinstance(keys, dict) else {}


def retie_declared(model: nn.Module) -> list[str]:
    """Make the ties ``model`` declares again (meta builds such as accelerate's break them); the targets re-tied.

    transformers models run their own ``tie_weights()``; other models' ``_tied_weights_keys``
    ``{target: source}`` is applied by assigning the source Parameter to the target attribute.
    """
    from .hf import is_hf_model

    before = {n: id(p) for n, p in model.named_parameters(remove_duplicate=False)}
    if is_hf_model(model):
        model.tie_weights()
    else:
        for target, source in declared_ties(model).items():
            try:
                src = model.get_parameter(source)
            except AttributeError:
                continue
            parent, _, local = target.rpartition(".")
            module = model.get_submodule(parent)
            if module._parameters.get(local) is not src:
                setattr(module, local, src)
    after = {n: id(p) for n, p in model.named_parameters(remove_duplicate=False)}
    return [n for n in after if before.get(n) != after[n]]


def find_ties(model: nn.Module) -> list[Tie]:
    """Every Parameter held by more than one (module, attribute), with its winner (see the module docstring)."""
    owners: dict[int, list[tuple[nn.Module, str, str]]] = {}
    params: dict[int, nn.Parameter] = {}
    seen: set[tuple[int, str]] = set()
    for mod_name, module in walk.modules(model):
        for local, p in module._parameters.items():
            if p is None or (id(module), local) in seen:
                continue
            seen.add((id(module), local))
            owners.setdefault(id(p), []).append((module, local, f"{mod_name}.{local}" if mod_name else local))
            params[id(p)] = p
    targets = declared_ties(model)
    ties = []
    for pid, own in owners.items():
        if len(own) < 2:
            continue
        names = [q for _, _, q in own]
        sources = {targets[q] for q in names if q in targets} & set(names)
        winner = next(iter(sources)) if len(sources) == 1 else names[0]
        ties.append(Tie(params[pid], winner, [o for o in own if o[2] != winner], declared=len(sources) == 1))
    return ties


@contextlib.contextmanager
def losers_stand_in(model: nn.Module, tracked: dict[str, torch.Tensor]) -> Iterator[list[Tie]]:
    """While inside, every losing owner of a tied tensor holds a meta stand-in, tracked in ``tracked`` too."""
    ties = find_ties(model)
    swapped: list[tuple[nn.Module, str, nn.Parameter]] = []
    try:
        for tie in ties:
            for module, local, qualified in tie.losers:
                stand_in = nn.Parameter(torch.empty_strided(tie.param.shape, tie.param.stride(), dtype=tie.param.dtype,
                                                            device="meta"), requires_grad=tie.param.requires_grad)
                module._parameters[local] = stand_in
                swapped.append((module, local, tie.param))
                tracked[qualified + STAND_IN] = stand_in
        yield ties
    finally:
        for module, local, p in swapped:
            module._parameters[local] = p
        for name in [n for n in tracked if n.endswith(STAND_IN)]:
            del tracked[name]


def settle(ties: list[Tie], pending: list[Pending], names: dict[int, str]) -> list[Pending]:
    """Drop the stand-ins' records, warning where a guessed winner's init differs from another owner's.

    ``names`` maps ``id(param)`` to the name the tied tensor is tracked under.
    """
    by_name = {p.name: p for p in pending}
    for tie in ties:
        if tie.declared:
            continue
        won = by_name.get(names.get(id(tie.param), ""))
        for _, _, qualified in tie.losers:
            lost = by_name.get(qualified + STAND_IN)
            if _outcome(won) != _outcome(lost):
                warnings.warn(f"fastinit: {tie.winner} is tied to {qualified} and their modules initialize it "
                              f"differently; the model declares no tie, so {tie.winner}'s init (first in module order) "
                              "was kept. Declare the tie (_tied_weights_keys = {target: source}) or initialize the "
                              "tied tensor with fastinit.Rules", RuntimeWarning, stacklevel=_user_stacklevel())
    return [p for p in pending if not p.name.endswith(STAND_IN)]


def _user_stacklevel() -> int:
    """The ``stacklevel``, for a warning raised by this function's caller, of the first frame outside fastinit."""
    f, level = sys._getframe(1), 1
    while f is not None and f.f_globals.get("__name__", "").startswith("fastinit"):
        f, level = f.f_back, level + 1
    return level


def _outcome(p: Pending | None) -> tuple:
    return (None, 0) if p is None else (p.spec, len(p.post_ops))


Recording = Callable[[dict[str, torch.Tensor], Callable[[Pending], None]], list[Pending]]


def record_untied(model: nn.Module, tracked: dict[str, torch.Tensor], flush: Callable[[Pending], None],
                  record: Recording) -> list[Pending]:
    """``record(tracked, flush)`` with every losing owner of a tied tensor on a stand-in (see the module docstring)."""
    names = {id(t): n for n, t in tracked.items()}
    tracked = dict(tracked)

    def flush_real(p: Pending) -> None:
        if not p.name.endswith(STAND_IN):  # a stand-in has no memory, and its record is dropped anyway
            flush(p)

    with losers_stand_in(model, tracked) as ties:
        if not ties:
            return record(tracked, flush)
        pending = record(tracked, flush_real)
    return settle(ties, pending, names)
