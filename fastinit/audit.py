"""``fastinit.audit``: a model's current values held against what a policy says they should be.

Whoever wrote the values (eager torch, transformers, a checkpoint, fastinit), each tracked tensor is
compared with the spec the policy gives it (the same dry run as :func:`fastinit.explain`):

- **deterministic specs** (constant, eye, dirac) and the partial constant writes replayed after a spec
  (Embedding padding rows): exact equality with what ``torch.nn.init`` (and the replayed writes) give on
  a fresh tensor of the same shape and dtype;
- **random specs** (uniform, normal, trunc_normal and the Xavier/Kaiming families; sparse's non-zeros):
  no value outside the spec's bounds, no NaN/inf, and four tests, each a p-value under "independent
  draws from the spec's distribution rounded to the tensor's dtype": Kolmogorov-Smirnov on a sample
  (randomized PIT, so rounding to bfloat16 does not look like a misfit), the mean and the spread about
  the spec's mean over *all* values (exact normal / chi-square tests for the normal family, CLT with the
  distribution's kurtosis otherwise), and, for the normal family, the largest |z| (wild values). In
  bfloat16/float16 the mean and std are held only to the dtype's resolution (dead bands of eps · range
  and eps relative), because torch's own low-precision init is that coarse (its bfloat16 ``uniform_``
  is low by range/512 on average);
- **orthogonal**: ``Q Qᵀ`` (or ``Qᵀ Q``) equal to gain² · I within a tolerance for the dtype;
  **sparse**: exactly ``ceil(sparsity · rows)`` zeros per column.

The p-value threshold does not move with tensor size: KS runs on a sample of at most ``sample``
values (fixed, default 20 000; a fixed-seed generator picks it, so audits are reproducible), and the
threshold is family-wise: a row fails when any of its p-values is below ``alpha / (4 · random
tensors)`` (Bonferroni over every test of the audit), so a correctly initialized model is flagged
anywhere with probability at most ``alpha`` (default 1e-3), while moment tests over all values of a
large tensor still see small deviations (a std off by 1 % in a million-element tensor).

Sharded (DTensor) parameters are audited on the local shard only, against the spec of the global
tensor (no gather; each rank audits its own shard). Deterministic specs compare the local shard with
the same slice of the expected global tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .describe import EXACT_FAMILIES, RANDOM_FAMILIES, Distribution, describe, spec_call
from .dryrun import PlannedTensor, dry_run
from .expected import NotReplayable, expected_values, local_slice
from .sharding import is_dtensor, local_tensor
from .stats import chi2_two_sided_p, extreme_p, ks_uniform, moments, pit, two_sided_normal_p
from .table import RowsReport, fmt, markdown_table, text_table

__all__ = ["AuditRow", "AuditReport", "audit"]

OK, FAIL, UNCHECKED = "ok", "FAIL", "unchecked"


@dataclass
class AuditRow:
    """One tracked tensor: what the spec says its values are, what they are, and the verdict."""

    name: str
    shape: tuple[int, ...]  # the audited tensor's shape (a DTensor's local shard)
    dtype: str
    spec: str
    distribution: str
    numbers: dict
    label: str = ""  # the distribution with its numbers, e.g. 'uniform(a=-0.125, b=0.125)'
    expected_mean: float | None = None
    expected_std: float | None = None
    expected_min: float | None = None
    expected_max: float | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    outside: float | None = None  # share of values outside the spec's bounds
    checked: int = 0  # elements looked at
    p_value: float | None = None  # the smallest p-value of the row's tests
    failed_tests: tuple[str, ...] = ()
    verdict: str = UNCHECKED  # ok, FAIL, unchecked
    reason: str = ""
    local_shard: bool = False  # statistics of this rank's shard of a DTensor

    @property
    def failed(self) -> bool:
        """Whether the values contradict the spec."""
        return self.verdict == FAIL


class AuditReport(RowsReport):
    """The rows of :func:`audit`; ``print(report)`` is a table with a summary, ``failed`` the bad rows."""

    headers = ("name", "shape", "dtype", "expected", "exp mean", "mean", "exp std", "std", "exp min", "min", "exp max",
               "max", "outside", "p", "verdict", "why")

    def __init__(self, rows: list[AuditRow], alpha: float, threshold: float,
                 planned: list[PlannedTensor] | None = None):
        self.rows = rows
        self.planned = planned or []
        self.alpha = alpha
        self.threshold = threshold  # the per-test p-value threshold

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> AuditRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def failed(self) -> list[AuditRow]:
        """Rows whose values contradict their spec."""
        return [r for r in self.rows if r.failed]

    @property
    def ok(self) -> bool:
        """True when no row failed (unchecked rows do not count)."""
        return not self.failed

    def summary(self) -> str:
        """'31 tensors: 30 ok, 1 FAIL (h.0.attn.c_proj.weight), 0 unchecked; ...'."""
        counts = {v: sum(r.verdict == v for r in self.rows) for v in (OK, FAIL, UNCHECKED)}
        bad = ", ".join(r.name for r in self.failed[:8]) + (" ..." if len(self.failed) > 8 else "")
        return (f"{len(self.rows)} tensors: {counts[OK]} ok, {counts[FAIL]} FAIL{f' ({bad})' if bad else ''}, "
                f"{counts[UNCHECKED]} unchecked; family-wise alpha {self.alpha:g} "
                f"(per-test p threshold {self.threshold:.3g})")

    def _cells(self) -> list[list[str]]:
        def pv(r):
            return "" if r.p_value is None else f"{r.p_value:.2g}"

        return [[r.name, "x".join(map(str, r.shape)) or "()", r.dtype, r.label or "-", fmt(r.expected_mean),
                 fmt(r.mean), fmt(r.expected_std), fmt(r.std), fmt(r.expected_min), fmt(r.min), fmt(r.expected_max),
                 fmt(r.max), fmt(r.outside), pv(r), r.verdict, r.reason] for r in self.rows]

    def __str__(self) -> str:
        return text_table(self.headers, self._cells()) + "\n" + self.summary()

    def to_markdown(self) -> str:
        """The table as Markdown, the summary under it."""
        return markdown_table(self.headers, self._cells()) + "\n\n" + self.summary()



# ---- the checks ---------------------------------------------------------------------------------

def _rounded(v: float, dtype: torch.dtype) -> float:
    return v if math.isinf(v) else float(torch.tensor(v, dtype=torch.float64).to(dtype))


def _same(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a == b) | (torch.isnan(a) & torch.isnan(b))


def _exact_check(row: AuditRow, got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    bad = ~_same(got, want)
    nbad = int(bad.sum())
    row.checked += got.numel()
    if nbad:
        diff = float((got[bad].double() - want[bad].double()).abs().nan_to_num(math.inf).max())
        row.verdict = FAIL
        row.failed_tests += (what,)
        row.reason = (row.reason + "; " if row.reason else "") + \
            f"{what}: {nbad} of {got.numel()} values differ (max |diff| {diff:.3g})"


def _random_check(row: AuditRow, values: torch.Tensor, dist: Distribution, threshold: float, sample: int,
                  gen: torch.Generator) -> None:
    dtype = values.dtype
    mu, var, mu4 = dist.mean(), dist.central_moment(2), dist.central_moment(4)
    lo, hi = dist.bounds
    m = moments(values, mu, _rounded(lo, dtype), _rounded(hi, dtype))
    n = m.n
    row.checked += n
    row.expected_mean, row.expected_std = mu, math.sqrt(var)
    row.expected_min, row.expected_max = (lo, hi) if not math.isinf(lo) else (None, None)
    row.mean, row.std, row.min, row.max = m.mean, math.sqrt(m.var), m.min, m.max
    row.outside = m.outside / n
    problems = []
    if m.nonfinite:
        problems.append(f"{m.nonfinite} NaN/inf values")
    if m.outside:
        problems.append(f"{m.outside} values outside [{lo:.6g}, {hi:.6g}]")
    if problems:
        row.verdict, row.failed_tests = FAIL, row.failed_tests + ("bounds",)
        row.reason = "; ".join(problems)
        return
    eps = torch.finfo(dtype).eps
    if dtype.itemsize <= 2:
        # bfloat16/float16: torch itself draws uniforms from a grid of about 1/eps levels (its bf16 uniform_ is
        # low by range/512 on average) and computes transforms in the low precision (bf16 trunc_normal_'s std
        # is off by ~0.2 %), so mean and spread are defined only to the dtype's resolution: dead bands of
        # eps * range on the mean and eps (relative) on the std, before the sampling-error tests
        mean_band, var_band = eps * 2 * math.sqrt(3 * var), 2 * eps * var
    else:
        mean_band, var_band = 0.0, var * eps * eps  # rounding adds about var * eps^2 / 12 of spread
    dmean = m.mean - mu
    dmean = math.copysign(max(abs(dmean) - mean_band, 0.0), dmean)
    pvals: dict[str, float] = {"mean": two_sided_normal_p(dmean / math.sqrt(var / n))}
    dev = m.sq_dev - var
    dev = math.copysign(max(abs(dev) - var_band, 0.0), dev)
    if dist.family == "normal":
        pvals["std"] = chi2_two_sided_p(n * (var + dev) / var, n)
        zmax = max(abs(m.min - mu), abs(m.max - mu)) / math.sqrt(var)
        pvals["extreme"] = extreme_p(zmax, n)
    else:
        pvals["std"] = two_sided_normal_p(dev / math.sqrt(max(mu4 - var * var, 1e-300) / n))
    x = values
    if n > 4 * sample:
        idx = torch.unique(torch.randint(0, n, (sample + sample // 20,), generator=gen))
        x = values[idx]
    _, pvals["ks"] = ks_uniform(pit(x, dist, gen))
    row.p_value = min(pvals.values())
    failed = tuple(k for k, v in pvals.items() if v < threshold)
    if failed:
        row.verdict, row.failed_tests = FAIL, row.failed_tests + failed
        row.reason = (row.reason + "; " if row.reason else "") + ", ".join(
            f"{k} p={pvals[k]:.2g}" for k in failed)
    elif row.verdict != FAIL:
        row.verdict = OK


def _orthogonal_check(row: AuditRow, w: torch.Tensor, gain: float) -> None:
    q = w.reshape(w.shape[0], -1).to(torch.float64)
    rows, cols = q.shape
    g = q @ q.T if rows <= cols else q.T @ q
    err = float((g - gain * gain * torch.eye(g.shape[0], dtype=torch.float64)).abs().max())
    tol = 20 * torch.finfo(w.dtype).eps * math.sqrt(max(rows, cols)) * max(gain * gain, 1e-30)
    row.checked = w.numel()
    row.reason = f"max |QQ^T - gain^2 I| = {err:.3g} (tolerance {tol:.3g})"
    row.verdict = OK if err <= tol else FAIL
    if row.verdict == FAIL:
        row.failed_tests = ("orthogonal",)


def _sparse_check(row: AuditRow, w: torch.Tensor, dist: Distribution, threshold: float, sample: int,
                  gen: torch.Generator) -> None:
    rows = w.shape[0]
    want = int(math.ceil(dist.numbers["sparsity"] * rows))
    zeros = (w == 0).sum(dim=0)
    if bool((zeros < want).any()) or bool((zeros > want + max(1, rows // 100)).any()):
        row.verdict, row.failed_tests = FAIL, ("zeros per column",)
        row.reason = f"columns with other than {want} zeros: {int(((zeros < want) | (zeros > want)).sum())}"
        return
    normal = Distribution("normal", {"mean": 0.0, "std": dist.numbers["std"]})
    _random_check(row, w[w != 0], normal, threshold, sample, gen)


def _audit_one(p: PlannedTensor, threshold: float, sample: int, gen: torch.Generator) -> AuditRow:
    t = p.tensor
    local = local_tensor(t).detach()
    spec = p.final_spec
    row = AuditRow(name=p.name, shape=tuple(local.shape), dtype=str(t.dtype).replace("torch.", ""),
                   spec="" if spec is None else spec_call(spec), distribution="", numbers={},
                   local_shard=is_dtensor(t))
    if spec is None:
        row.reason = ("changed in place by init code after its spec" if p.changed_after_flush else
                      "written by init code with ops that are no spec" if p.written_by_init_code else
                      "the policy does not write it")
        return row
    dist = describe(spec, tuple(p.stand_in.shape))
    row.distribution, row.numbers, row.label = dist.family, dict(dist.numbers), dist.label()
    if row.local_shard:
        row.reason = "local shard"
    if local.numel() == 0 or dist.family == "empty":
        row.verdict = OK
        return row
    if t.dtype.is_complex or not t.dtype.is_floating_point:
        row.reason = f"{t.dtype} values are not audited"
        return row
    got = local.cpu()
    if dist.family == "orthogonal":
        if row.local_shard:
            row.reason = "a shard of an orthogonal matrix cannot be checked alone"
            return row
        _orthogonal_check(row, got, dist.numbers["gain"])
        return row
    try:
        expected = expected_values(p, dist)
    except NotReplayable as exc:
        row.reason = str(exc)
        return row
    if expected is not None:
        expected = local_slice(expected, t)
    if dist.family in EXACT_FAMILIES:
        e = expected.double()
        row.expected_mean, row.expected_std = float(e.mean()), float(e.std(unbiased=False))
        row.expected_min, row.expected_max = float(e.min()), float(e.max())
        g = got.double()
        row.mean, row.std, row.min, row.max = float(g.mean()), float(g.std(unbiased=False)), float(g.min()), \
            float(g.max())
        row.verdict = OK
        _exact_check(row, got, expected, dist.family)
        return row
    flat = got.reshape(-1)
    if expected is not None:  # partial constant writes after a random spec (padding rows)
        fixed = ~torch.isnan(expected.reshape(-1))
        row.verdict = OK
        _exact_check(row, flat[fixed], expected.reshape(-1)[fixed], "partial writes")
        flat = flat[~fixed]
    if dist.family == "sparse":
        _sparse_check(row, got, dist, threshold, sample, gen)
    elif dist.family in RANDOM_FAMILIES:
        _random_check(row, flat, dist, threshold, sample, gen)
    return row


def audit(model: nn.Module, policy: Any = "default", *, alpha: float = 1e-3, sample: int = 20_000) -> AuditReport:
    """Compare every tracked tensor's current values with the spec ``policy`` gives it; nothing is written.

    ``alpha`` is the family-wise false-alarm rate (the chance that a correctly initialized model gets any
    FAIL row); ``sample`` the largest sample the KS test uses per tensor. DTensor parameters are audited on
    this rank's local shard. See the module docstring for every test. There is no torch equivalent: it is
    the ``print(w.mean(), w.std())`` / ``plt.hist(w)`` check of a tutorial, for every tensor at once.
    """
    planned = dry_run(model, policy)
    meta = [p.name for p in planned if local_tensor(p.tensor).is_meta]
    if meta:
        raise RuntimeError(f"{len(meta)} tensors are on the meta device ({', '.join(meta[:5])}): they have no "
                           "values to audit")
    randoms = 0
    for p in planned:
        spec = p.final_spec
        if spec is not None:
            fam = describe(spec, tuple(p.stand_in.shape)).family
            randoms += fam in RANDOM_FAMILIES or fam == "sparse"
    threshold = alpha / (4 * max(randoms, 1))
    gen = torch.Generator().manual_seed(0)
    return AuditReport([_audit_one(p, threshold, sample, gen) for p in planned], alpha, threshold, planned)
