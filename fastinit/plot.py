"""Histograms of tensor values with the spec's density over them (matplotlib, optional).

The figure is drawn on matplotlib's object API (``Figure`` + the Agg canvas), not ``pyplot``: no global
backend or figure state is touched, and no display is needed.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import torch

from .describe import RANDOM_FAMILIES, Distribution, describe
from .dryrun import PlannedTensor
from .sharding import local_tensor

INSTALL_HINT = "plotting needs matplotlib, which is not installed: pip install matplotlib (it does not depend on torch)"
_MAX_VALUES = 200_000


def _require_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return Figure, FigureCanvasAgg


def select(planned: Sequence[PlannedTensor], patterns: Sequence[str] | None = None,
           max_panels: int = 12) -> list[tuple[PlannedTensor, Distribution]]:
    """The tensors to draw: those matching any glob of ``patterns``, or else the largest of each distinct
    random distribution (family and numbers); at most ``max_panels``, largest first."""
    cands = []
    for p in planned:
        spec = p.final_spec
        if spec is None:
            continue
        d = describe(spec, tuple(p.stand_in.shape))
        if d.family in RANDOM_FAMILIES and local_tensor(p.tensor).numel() > 0 and not p.tensor.is_meta:
            cands.append((p, d))
    if patterns:
        chosen = [(p, d) for p, d in cands
                  if any(fnmatch.fnmatchcase(n, g) for n in (p.name, *p.aliases) for g in patterns)]
    else:
        best: dict[str, tuple[PlannedTensor, Distribution]] = {}
        for p, d in cands:
            k = d.label()
            if k not in best or p.stand_in.numel() > best[k][0].stand_in.numel():
                best[k] = (p, d)
        chosen = list(best.values())
    chosen.sort(key=lambda pd: -pd[0].stand_in.numel())
    return chosen[:max_panels]


def plot_histograms(chosen: Sequence[tuple[PlannedTensor, Distribution]], path: str, bins: int | None = None) -> int:
    """Write a PNG with one small panel per tensor: its values' histogram and the density the spec gives.

    ``bins`` None: √n bins, between 10 and 60. Returns the number of panels. Raises ImportError (with how
    to install it) without matplotlib.
    """
    Figure, FigureCanvasAgg = _require_matplotlib()
    n = max(len(chosen), 1)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.4 * cols, 2.6 * rows), dpi=100)
    FigureCanvasAgg(fig)
    gen = torch.Generator().manual_seed(0)
    for i, (p, d) in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, i + 1)
        x = local_tensor(p.tensor).detach().reshape(-1).cpu()
        if x.numel() > _MAX_VALUES:  # a sample draws the same histogram
            x = x[torch.randint(0, x.numel(), (_MAX_VALUES,), generator=gen)]
        x = x.double()
        nb = bins or min(60, max(10, int(math.sqrt(x.numel()))))
        ax.hist(x.numpy(), bins=nb, density=True, color="#9ecae1", edgecolor="none")
        lo, hi = float(x.min()), float(x.max())
        pad = 0.05 * (hi - lo or 1.0)
        grid = torch.linspace(lo - pad, hi + pad, 400, dtype=torch.float64)
        ax.plot(grid.numpy(), d.pdf(grid).numpy(), color="#d62728", linewidth=1.2)
        ax.set_title(f"{p.name}\n{d.label()}", fontsize=7)
        ax.tick_params(labelsize=6)
    if not chosen:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no tensor with a random spec selected", ha="center", va="center")
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    return len(chosen)
