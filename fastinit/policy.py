"""Policies: what each tensor of a model gets. A preset name, a :class:`Rules` object, or a callable.

- ``"default"``: what each module's own constructor does, recorded from its ``reset_parameters``
  (or ``_reset_parameters``), children before parents, as construction runs them.
- a preset name (:data:`PRESETS`): a ready :class:`Rules`.
- :class:`Rules`: ordered (match -> spec) rules; the first match wins.
- a callable ``fn(module)``: applied to every submodule as ``model.apply(fn)`` does, recorded.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import known_inits, walk
from . import specs as S
from .calls import fast_spec
from .record import Pending, Recorder
from .sharding import fill_global

Match = type | tuple | str | Callable[[str, torch.Tensor, nn.Module], bool]
Action = S.Spec | None | str  # a spec, None (leave untouched) or "default" (the module's own init)

_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.RMSNorm)


def default_init(module: nn.Module) -> None:
    """What construction runs for ``module`` itself: its ``reset_parameters`` or ``_reset_parameters``."""
    fn = getattr(module, "reset_parameters", None)
    if not callable(fn):
        fn = getattr(module, "_reset_parameters", None)
    if callable(fn):
        fn()


def tracked_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters (tied ones once, under their first name) and floating-point buffers, by qualified name.

    Integer and bool buffers (``num_batches_tracked``) are not tracked: their module keeps them.
    """
    params, buffers = walk.named_tensors(model)
    out: dict[str, torch.Tensor] = dict(params)
    for name, b in buffers:
        if b is not None and (b.is_floating_point() or b.is_complex()):
            out.setdefault(name, b)
    return out


def _owner(modules: dict[str, nn.Module], name: str) -> nn.Module:
    """The module holding tensor ``name``; ``modules`` is ``dict(model.named_modules(remove_duplicate=False))``."""
    return modules[name.rpartition(".")[0]]


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or "Norm" in type(module).__name__


@dataclass
class Rules:
    """Ordered ``(match, action)`` rules: the first rule whose match accepts a tensor decides its action.

    A match is a module type (or tuple of types) owning the tensor, a glob on its qualified name
    (``"*.bias"``, ``"blocks.*.attn.c_proj.weight"``), or a predicate ``fn(name, tensor, module)``.
    An action is a spec (``fastinit.specs.Normal(0, 0.02)``), ``"default"`` (the module's own init)
    or None (leave the tensor as it is). Tensors no rule matches get ``otherwise``; with
    ``strict=True`` an unmatched parameter raises ``ValueError`` naming every one of them.
    """

    rules: list[tuple[Match, Action]] = field(default_factory=list)
    strict: bool = False
    otherwise: Action = "default"
    zero_padding_rows: bool = True  # zero Embedding padding_idx rows after a random spec, as HF and torch do

    def add(self, match: Match, action: Action) -> Rules:
        """Append a rule; returns self so calls chain."""
        self.rules.append((match, action))
        return self

    def action_for(self, name: str, tensor: torch.Tensor, module: nn.Module) -> tuple[bool, Action]:
        """(whether a rule matched, the action) for one tensor."""
        return self.matcher()(name, tensor, module)

    def matcher(self) -> Callable[[str, torch.Tensor, nn.Module], tuple[bool, Action]]:
        """:meth:`action_for` with every rule's match turned into a predicate once (for many tensors; take a new
        one after changing the rules). Raises TypeError for a match that is none of the kinds above."""
        compiled = [(_predicate(match), action) for match, action in self.rules]
        otherwise = self.otherwise

        def action_for(name: str, tensor: torch.Tensor, module: nn.Module) -> tuple[bool, Action]:
            for pred, action in compiled:
                if pred(name, tensor, module):
                    return True, action
            return False, otherwise

        return action_for


def _predicate(match: Match) -> Callable[[str, torch.Tensor, nn.Module], bool]:
    if isinstance(match, str):
        fullmatch = re.compile(fnmatch.translate(match)).match  # fnmatch.fnmatchcase's own translation
        return lambda name, t, m: fullmatch(name) is not None
    if isinstance(match, type) or (isinstance(match, tuple) and all(isinstance(m, type) for m in match)):
        return lambda name, t, m: isinstance(m, match)
    if callable(match):
        return lambda name, t, m: bool(match(name, t, m))
    raise TypeError(f"a rule's match must be a module type, a name glob or a predicate, not {type(match).__name__}")


# ---- presets -----------------------------------------------------------------------------------

def _local(name: str) -> str:
    return name.rpartition(".")[2]


def _is_bias(name, t, m) -> bool:
    return _local(name) == "bias" or _local(name).endswith("_bias")


def _is_norm_weight(name, t, m) -> bool:
    return _is_norm(m) and _local(name) == "weight"


def _is_norm_bias(name, t, m) -> bool:
    return _is_norm(m) and _local(name) == "bias"


def _is_matrix(name, t, m) -> bool:
    return isinstance(t, nn.Parameter) and t.dim() >= 2


def _is_linear_like_weight(name, t, m) -> bool:
    return _local(name) == "weight" and (isinstance(m, (nn.Linear, nn.Embedding, nn.modules.conv._ConvNd))
                                         or type(m).__name__ == "Conv1D")


def _matrix_preset(spec: S.Spec) -> Rules:
    return Rules([(_is_norm_weight, S.Constant(1.0)), (_is_norm_bias, S.Constant(0.0)),
                  (_is_matrix, spec), (_is_bias, S.Constant(0.0))])


def gpt2(n_layer: int | None = None, std: float = 0.02, residual: str = "*c_proj.weight") -> Rules:
    """GPT-2: N(0, 0.02) weights, residual projections N(0, 0.02/√(2·n_layer)), zero biases, unit norms.

    ``n_layer`` None: counted as half the parameters matching ``residual`` (attention and MLP each have one).
    """
    state: dict[str, Any] = {"n_layer": n_layer}

    def residual_spec(name, t, m):
        return fnmatch.fnmatchcase(name, residual)

    rules = Rules([
        (_is_norm_weight, S.Constant(1.0)), (_is_norm_bias, S.Constant(0.0)),
        (residual_spec, _Deferred(lambda: S.Normal(0.0, std / math.sqrt(2 * state["n_layer"])))),
        (_is_linear_like_weight, S.Normal(0.0, std)), (_is_bias, S.Constant(0.0)),
    ])
    rules.prepare = lambda model, tracked: state.update(  # type: ignore[attr-defined]
        n_layer=n_layer or max(1, sum(fnmatch.fnmatchcase(n, residual) for n in tracked) // 2))
    return rules


def bert(std: float = 0.02) -> Rules:
    """BERT: N(0, 0.02) Linear and Embedding weights (padding rows zero), zero biases, unit norms."""
    return Rules([(_is_norm_weight, S.Constant(1.0)), (_is_norm_bias, S.Constant(0.0)),
                  (_is_linear_like_weight, S.Normal(0.0, std)), (_is_bias, S.Constant(0.0))])


def vit(std: float = 0.02) -> Rules:
    """ViT (timm/HF): trunc_normal(0, 0.02, a=-2, b=2) weights and tokens, zero biases, unit norms."""
    return Rules([(_is_norm_weight, S.Constant(1.0)), (_is_norm_bias, S.Constant(0.0)),
                  (_is_bias, S.Constant(0.0)),
                  (lambda n, t, m: isinstance(t, nn.Parameter), S.TruncNormal(0.0, std, -2.0, 2.0))])


class _Deferred:
    """A spec computed when the plan is built (GPT-2's residual std needs the layer count)."""

    def __init__(self, make: Callable[[], S.Spec]):
        self.make = make


#: preset name -> factory of a Rules object (keyword arguments pass through)
PRESETS: dict[str, Callable[..., Rules]] = {
    "xavier_uniform": lambda gain=1.0: _matrix_preset(S.XavierUniform(gain)),
    "xavier_normal": lambda gain=1.0: _matrix_preset(S.XavierNormal(gain)),
    "kaiming_uniform": lambda a=0.0, mode="fan_in", nonlinearity="relu": _matrix_preset(
        S.KaimingUniform(a, mode, nonlinearity)),
    "kaiming_normal": lambda a=0.0, mode="fan_in", nonlinearity="relu": _matrix_preset(
        S.KaimingNormal(a, mode, nonlinearity)),
    "gpt2": gpt2,
    "bert": bert,
    "vit": vit,
}


def preset(name: str, **kwargs: Any) -> Rules:
    """The :class:`Rules` of a named preset, e.g. ``preset("kaiming_normal", nonlinearity="relu")``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose 'default' or one of {sorted(PRESETS)}")
    return PRESETS[name](**kwargs)


# ---- policy -> recorded specs ------------------------------------------------------------------

def record_callable(model: nn.Module, fn: Callable[[nn.Module], object], tracked: dict[str, torch.Tensor],
                    flush: Callable[[Pending], None], *, written: set[str] | None = None) -> list[Pending]:
    """Run ``model.apply(fn)`` under a :class:`Recorder`; the specs it would have written, not written.

    ``written`` (optional) receives the tracked names the code wrote in full itself (whole copies).
    """
    rec = Recorder(tracked, flush, model=model, written=written)
    with rec:
        rec.apply(model, fn)
    return rec.recorded()


def record_default(model: nn.Module, tracked: dict[str, torch.Tensor], flush: Callable[[Pending], None], *,
                   written: set[str] | None = None) -> list[Pending]:
    """``record_callable(model, default_init, ...)``, with torch's own modules' calls taken from
    :mod:`fastinit.known_inits` instead of running their code under the recording mode (same specs, a fraction
    of the time: the mode sends every tensor method the code calls through Python)."""
    rec = Recorder(tracked, flush, model=model, written=written)

    def init(module: nn.Module) -> None:
        derive = known_inits.deriver(type(module))
        if derive is not None:
            with torch.overrides._pop_mode_temporarily():  # the bookkeeping only reads shapes
                known = known_inits.known_calls(module, derive)
                if known is not None and known_inits.verified(known[0]):
                    for attr, fn, args in known[1]:
                        rec.set_whole(module._parameters[attr], fast_spec(fn, args))
                    return
        else:
            known = None
        default_init(module)  # recorded by running its code
        if known is not None and known_inits.verified(known[0]) is None:  # the first of its kind: hold the table to it
            layout, calls = known
            got = [rec.spec_of(module._parameters[attr]) for attr, _, _ in calls]
            known_inits.set_verified(layout, got == [fast_spec(fn, args) for _, fn, args in calls])

    with rec:
        rec.apply(model, init)
    return rec.recorded()


def resolve_policy(model: nn.Module, policy: Any, tracked: dict[str, torch.Tensor],
                   flush: Callable[[Pending], None], *, written: set[str] | None = None) -> list[Pending]:
    """Every tracked tensor that gets a spec under ``policy``, with its spec and replayed ops.

    ``written`` (optional) receives the names recorded init code wrote in full without a spec (whole copies).
    """
    if isinstance(policy, str):
        if policy == "default":  # tied tensors keep their creator's init (fastinit.ties)
            from .ties import record_untied

            return record_untied(model, tracked, flush, lambda tr, fl: record_default(model, tr, fl, written=written))
        if policy == "hf":  # a transformers model's own _init_weights (fastinit.hf)
            from .hf import record_hf

            return record_hf(model, tracked, flush)
        policy = preset(policy)
    if isinstance(policy, Rules):
        return _apply_rules(model, policy, tracked, flush, written)
    if callable(policy):
        return record_callable(model, policy, tracked, flush, written=written)
    raise TypeError("policy must be 'default', a preset name, a fastinit.Rules or a callable, "
                    f"not {type(policy).__name__}")


def _apply_rules(model: nn.Module, rules: Rules, tracked: dict[str, torch.Tensor],
                 flush: Callable[[Pending], None], written: set[str] | None = None) -> list[Pending]:
    prepare = getattr(rules, "prepare", None)
    if prepare is not None:
        prepare(model, tracked)
    params = {n for n, t in tracked.items() if isinstance(t, nn.Parameter)}  # (a buffer is never a Parameter)
    modules = dict(walk.modules(model))
    out: list[Pending] = []
    need_default: list[str] = []
    unmatched: list[str] = []
    action_for = rules.matcher()
    for name, t in tracked.items():
        module = _owner(modules, name)
        matched, action = action_for(name, t, module)
        if not matched and name not in params:
            action = "default"  # buffers follow their module unless a rule says otherwise
        elif not matched and rules.strict:
            unmatched.append(name)
            continue
        if isinstance(action, _Deferred):
            action = action.make()
        if action == "default":
            need_default.append(name)
        elif isinstance(action, S.Spec):
            p = Pending(name, t, action)
            if rules.zero_padding_rows and isinstance(module, (nn.Embedding, nn.EmbeddingBag)) \
                    and getattr(module, "padding_idx", None) is not None and _local(name) == "weight" \
                    and not isinstance(action, S.Constant):
                p.post_ops.append(_zero_row(t, module.padding_idx))
            out.append(p)
        elif action is not None:
            raise TypeError(f"rule action for {name} must be a spec, 'default' or None, not {action!r}")
    if unmatched:
        raise ValueError("no rule matches these parameters (strict=True): " + ", ".join(unmatched))
    if need_default:
        out.extend(record_owner_defaults(model, set(need_default), tracked, flush, written))
    return out


def keeps(wanted: set[str], p: Pending) -> bool:
    """Whether init code recorded for ``wanted`` names only writes ``p``: a wanted tensor (or part of one), or
    one of the init code's own temporaries (always written when read)."""
    return (p.part_of or p.name) in wanted or (p.temporary and p.part_of is None)


def record_owner_defaults(model: nn.Module, wanted: set[str], tracked: dict[str, torch.Tensor],
                          flush: Callable[[Pending], None], written: set[str] | None = None) -> list[Pending]:
    """The default init (:func:`default_init`) of the modules owning ``wanted`` names, recorded for those names only.

    The torch equivalent is calling ``reset_parameters()`` on each owner. A tensor outside ``wanted``
    is neither flushed nor given a spec by another module's init (a rule left it alone or gave it its
    own spec); the init code's own temporaries are always written when it reads them. ``written``
    (optional) receives the wanted names the init code wrote in full itself (whole copies).
    """
    modules = dict(walk.modules(model))
    owners = {id(_owner(modules, n)) for n in wanted}

    def owners_init(module: nn.Module) -> None:
        if id(module) in owners:
            default_init(module)

    def flush_wanted(p: Pending) -> None:
        if keeps(wanted, p):
            flush(p)

    by_default: set[str] = set()
    out = [p for p in record_callable(model, owners_init, tracked, flush_wanted, written=by_default)
           if keeps(wanted, p)]
    if written is not None:
        written.update(by_default & wanted)
    return out


def _zero_row(t: torch.Tensor, row: int) -> Callable[[], object]:
    # fill_global writes only this rank's part of a sharded (DTensor) embedding, with no gather
    return functools.partial(fill_global, t, functools.partial(_select_row, row=row), 0.0)


def _select_row(w: torch.Tensor, row: int) -> torch.Tensor:
    return w[row]
