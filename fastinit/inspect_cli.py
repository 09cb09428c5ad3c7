"""``python -m fastinit explain|audit``: the explain table or the audit of a built-in model shape or your own.

- ``explain``: the plan a policy gives the model (nothing written). The built-in shapes are allocated
  uninitialized (``fastinit.models.build``); ``--plot`` then initializes that fresh model with
  ``fastinit.apply(--seed)`` and draws what it wrote.
- ``audit``: the model's current values against the policy. A built-in shape is constructed as eager
  torch constructs it (``--init torch``, torch's own init) or then initialized by fastinit
  (``--init fastinit``); a ``module:callable`` model is audited as the callable returns it. The exit
  status is 1 when a row fails.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

import torch
from torch import nn

from .models import MODELS, build, construct

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _model(args, values: bool) -> nn.Module:
    if ":" in args.model:  # the user's model, moved/cast only where asked to
        obj = _load(args.model)
        model = obj if isinstance(obj, nn.Module) else obj()
        if args.device is not None:
            model = model.to(device=args.device)
        return model.to(dtype=_DTYPES[args.dtype]) if args.dtype is not None else model
    dtype = _DTYPES[args.dtype or "float32"]
    args.device = args.device or "cpu"
    if args.model not in MODELS:
        raise SystemExit(f"unknown model {args.model!r}; choose one of {sorted(MODELS)} or module:callable")
    if not values:
        return build(args.model, device=args.device, dtype=dtype)
    return construct(args.model).to(device=args.device, dtype=dtype)


def _policy(ref: str) -> Any:
    return _load(ref) if ":" in ref else ref


def _parser(cmd: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m fastinit {cmd}", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gpt2-tiny", help=f"one of {', '.join(MODELS)}, or module:callable")
    ap.add_argument("--policy", default="default", help="'default', a preset name, 'hf', or module:callable")
    ap.add_argument("--dtype", choices=sorted(_DTYPES),
                    help="built-in shapes: float32 unless given; a module:callable model is cast only if given")
    ap.add_argument("--device", help="built-in shapes: cpu unless given; a module:callable model moves only if given")
    ap.add_argument("--seed", type=int, default=0, help="seed of fastinit.apply where this command runs it")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--plot", metavar="FILE", help="write histograms of the values with the spec's density (PNG)")
    ap.add_argument("--tensors", metavar="GLOB", help="comma-separated name globs of the tensors to plot")
    if cmd == "audit":
        ap.add_argument("--init", choices=("torch", "fastinit"), default="torch",
                        help="built-in shapes: audit torch's own init, or fastinit.apply's")
        ap.add_argument("--alpha", type=float, default=1e-3, help="family-wise false-alarm rate")
        ap.add_argument("--sample", type=int, default=20_000, help="largest KS sample per tensor")
    return ap


def _print(report, args) -> None:
    if args.json:
        print(json.dumps(report.to_dicts(), default=str, indent=1))
    elif args.markdown:
        print(report.to_markdown())
    else:
        print(report)


def _plot(args, report) -> int:
    from .plot import INSTALL_HINT

    globs = [g for g in (args.tensors or "").split(",") if g]
    try:
        n = report.plot(args.plot, globs)
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    print(f"wrote {args.plot} ({n} panels)", file=sys.stderr)
    return 0


def main(cmd: str, argv: list[str]) -> int:
    """Run ``explain`` or ``audit`` with command-line ``argv``; the exit status."""
    args = _parser(cmd).parse_args(argv)
    policy = _policy(args.policy)
    if cmd == "explain":
        from .explain import explain

        model = _model(args, values=False)
        report = explain(model, policy)
        _print(report, args)
        if args.plot:
            from .apply import apply

            apply(model, policy, seed=args.seed)
            return _plot(args, report)
        return 0
    from .audit import audit

    model = _model(args, values=True)
    if args.init == "fastinit" and ":" not in args.model:
        from .apply import apply

        apply(model, policy, seed=args.seed)
    report = audit(model, policy, alpha=args.alpha, sample=args.sample)
    _print(report, args)
    rc = 1 if report.failed else 0
    if args.plot:
        rc = max(rc, _plot(args, report))
    return rc
