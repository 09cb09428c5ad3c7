"""fastinit.audit: torch's own eager init passes against "default" for the whole zoo (and in low precision);
each kind of wrong init is flagged; the statistics agree with scipy; sharded models audit their local shard
(2 gloo ranks, forked as in test_sharding.py)."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
import scipy.stats as st
import torch
from gloo_ranks import run_on_ranks
from init_zoo import Custom, zoo, zoo_id
from torch import nn

import fastinit
from fastinit import specs as S
from fastinit.audit import audit
from fastinit.models import GPT2, GPT2Config
from fastinit.stats import _neighbours, chi2_two_sided_p, extreme_p, ks_uniform, moments


def failed(report) -> dict:
    return {r.name: r.reason for r in report.failed}


# ---- correct inits pass -------------------------------------------------------------------------

@pytest.mark.parametrize("make", zoo(), ids=zoo_id)
def test_torch_eager_init_passes_default(make):
    torch.manual_seed(1)
    model = make()
    report = audit(model)
    assert report.ok, failed(report)
    checked = [r for r in report if r.verdict == "ok"]
    assert checked and all(r.checked > 0 for r in checked)
    assert all(r.verdict != "unchecked" for r in report), [(r.name, r.reason) for r in report]


@pytest.mark.parametrize("make", zoo(), ids=zoo_id)
def test_fastinit_apply_passes_default(make):
    model = make()
    fastinit.apply(model, seed=7)
    report = audit(model)
    assert report.ok, failed(report)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_low_and_double_precision_eager_init_passes(dtype):
    """bfloat16 has 256 values per binade: a plain KS on F(x) would see the steps; the randomized PIT does not."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(300, 200, dtype=dtype), nn.Embedding(500, 64, padding_idx=1, dtype=dtype),
                          nn.LayerNorm(64, dtype=dtype), nn.Conv2d(8, 16, 3, dtype=dtype))
    report = audit(model)
    assert report.ok, failed(report)
    fastinit.apply(model, seed=3)
    report = audit(model)
    assert report.ok, failed(report)
    assert report["1.weight"].checked == 500 * 64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_large_low_precision_tensors_from_torch_pass_and_real_errors_still_fail(dtype):
    """torch's bf16 uniform_ is low by range/512 on average: 13 standard errors in 4 M values. The dtype's
    resolution bounds how exactly mean and std are defined; a 3 % std error is still far outside it."""
    torch.manual_seed(9)
    cases = [(S.KaimingUniform(math.sqrt(5)), lambda w: nn.init.kaiming_uniform_(w, a=math.sqrt(5))),
             (S.Uniform(-0.1, 0.1), lambda w: nn.init.uniform_(w, -0.1, 0.1)),
             (S.TruncNormal(0.0, 0.02, -0.04, 0.04), lambda w: nn.init.trunc_normal_(w, 0.0, 0.02, -0.04, 0.04)),
             (S.Normal(0.0, 0.02), lambda w: nn.init.normal_(w, 0.0, 0.02))]
    for spec, torch_init in cases:
        lin = nn.Linear(2000, 2000, bias=False, dtype=dtype)
        rules = fastinit.Rules([("weight", spec)])
        torch_init(lin.weight.data)
        assert audit(lin, rules).ok, (spec, failed(audit(lin, rules)))
        with torch.no_grad():
            lin.weight.mul_(1.03)
        assert audit(lin, rules).failed, spec


def test_presets_pass_when_the_model_was_initialized_with_them():
    torch.manual_seed(3)
    model = GPT2(GPT2Config(n_layer=2, d_model=64, vocab=1000, ctx=64))
    for policy in ("gpt2", "bert", "vit", "xavier_uniform", "kaiming_normal"):
        fastinit.apply(model, policy, seed=4)
        report = audit(model, policy)
        assert report.ok, (policy, failed(report))


def test_padding_rows_a_rule_zeroes_are_checked_exactly():
    model = nn.Sequential(nn.Embedding(40, 16, padding_idx=7), nn.Linear(16, 16))
    fastinit.apply(model, "bert", seed=2)  # N(0, 0.02) with the padding row zeroed after (a replayed post op)
    report = audit(model, "bert")
    assert report.ok and report["0.weight"].checked == 40 * 16
    with torch.no_grad():
        model[0].weight[7, 2] = 0.01
    assert audit(model, "bert")["0.weight"].failed_tests == ("partial writes",)


def test_a_large_tensor_passes_and_a_one_percent_std_error_is_seen():
    """The threshold does not move with size; the moment tests use every value."""
    w = nn.Embedding(1000, 1000)  # N(0, 1), a million values
    fastinit.apply(w, seed=5)
    assert audit(w).ok
    with torch.no_grad():
        w.weight.normal_(0.0, 1.01)
    r = audit(w)["weight"]
    assert r.failed and "std" in r.failed_tests and r.checked == 10**6


# ---- wrong inits are flagged --------------------------------------------------------------------

def test_a_layer_scaled_three_times_is_flagged():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(64, 64), nn.Embedding(200, 32), nn.Linear(64, 64))
    with torch.no_grad():
        model[0].weight.mul_(3)
        model[1].weight.mul_(3)
    report = audit(model)
    assert set(failed(report)) == {"0.weight", "1.weight"}
    assert "outside" in report["0.weight"].reason and report["0.weight"].outside > 0.5
    assert "std" in report["1.weight"].failed_tests
    assert report["2.weight"].verdict == "ok"


def test_a_wrong_constant_and_a_nonzero_padding_row_are_flagged():
    model = nn.Sequential(nn.LayerNorm(16), nn.Embedding(30, 16, padding_idx=5), nn.BatchNorm1d(16))
    with torch.no_grad():
        model[0].weight.fill_(0.9)
        model[1].weight[5, 3] = 0.25
        model[2].running_var[0] = 2.0
    report = audit(model)
    assert set(failed(report)) == {"0.weight", "1.weight", "2.running_var"}
    assert report["1.weight"].failed_tests == ("partial writes",) and "1 of 16" in report["1.weight"].reason
    assert "16 of 16" in report["0.weight"].reason


def test_a_std_ignoring_depth_scaling_is_flagged():
    """GPT-2 wants N(0, 0.02/sqrt(2 n_layer)) on the residual projections; N(0, 0.02) everywhere is caught there."""
    model = GPT2(GPT2Config(n_layer=2, d_model=64, vocab=1000, ctx=64))
    fastinit.apply(model, "bert", seed=6)  # N(0, 0.02) on every Linear/Embedding weight
    report = audit(model, "gpt2")
    assert set(failed(report)) == {f"h.{i}.{p}.c_proj.weight" for i in range(2) for p in ("attn", "mlp")}


def test_constructor_defaults_under_a_xavier_policy_are_flagged():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))
    report = audit(model, "xavier_uniform")  # values are kaiming_uniform(a=sqrt 5): inside the bounds, too narrow
    assert {"0.weight", "2.weight"} <= set(failed(report))
    assert "std" in report["0.weight"].failed_tests


def test_wild_values_and_nans_are_flagged():
    w = nn.Embedding(300, 100)
    fastinit.apply(w, seed=8)
    with torch.no_grad():
        w.weight[7, :3] = 8.0  # three 8-sigma values in 30 000: mean and std barely move
    r = audit(w)["weight"]
    assert r.failed and "extreme" in r.failed_tests
    with torch.no_grad():
        w.weight[7, :3] = float("nan")
    r = audit(w)["weight"]
    assert r.failed and "NaN" in r.reason


def test_truncation_sparse_eye_dirac_and_orthogonal():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(200, 200), nn.Linear(50, 40), nn.Linear(5, 5), nn.Conv2d(4, 4, 3), Custom())
    rules = fastinit.Rules([("0.weight", S.TruncNormal(0.0, 0.02, -0.04, 0.04)), ("1.weight", S.Sparse(0.3, 0.02)),
                            ("2.weight", S.Eye()), ("3.weight", S.Dirac())], otherwise=None)
    with torch.no_grad():
        nn.init.trunc_normal_(model[0].weight, 0.0, 0.02, -0.04, 0.04)
        nn.init.sparse_(model[1].weight, 0.3, 0.02)
        nn.init.eye_(model[2].weight)
        nn.init.dirac_(model[3].weight)
    report = audit(model, rules)
    assert report.ok, failed(report)
    assert report["4.w"].verdict == "unchecked" and report["4.w"].reason == "the policy does not write it"
    assert audit(model)["4.w"].verdict == "ok"  # the custom module's orthogonal_
    with torch.no_grad():
        model[0].weight.normal_(0.0, 0.02)  # untruncated
        model[1].weight.normal_(0.0, 0.02)  # dense
        model[2].weight[1, 0] = 1e-3
        model[3].weight[0, 0, 1, 1] = 0.5
        model[4].w.mul_(1.01)
    report = audit(model, rules)
    assert set(failed(report)) == {"0.weight", "1.weight", "2.weight", "3.weight"}
    assert audit(model)["4.w"].failed


def test_values_init_code_changed_after_their_spec_are_unchecked_not_passed():
    def halve(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight)
            m.weight.data.mul_(0.5)
            nn.init.zeros_(m.bias)

    model = nn.Linear(20, 20)
    halve(model)
    report = audit(model, halve)
    assert report["weight"].verdict == "unchecked" and "changed in place" in report["weight"].reason
    assert report["bias"].verdict == "ok" and report.ok


def test_audit_writes_nothing():
    model = nn.Sequential(nn.Embedding(10, 4, padding_idx=3), nn.BatchNorm1d(4), nn.Linear(4, 5))
    with torch.no_grad():
        model[1].num_batches_tracked.fill_(9)
    before = {n: (t._version, t.clone()) for n, t in model.state_dict(keep_vars=True).items()}
    audit(model)
    for n, t in model.state_dict(keep_vars=True).items():
        assert t._version == before[n][0] and torch.equal(t.detach(), before[n][1].detach()), n


def test_report_text_markdown_and_summary():
    model = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 3))
    with torch.no_grad():
        model[0].bias.fill_(1.0)
    report = audit(model)
    assert report.summary().startswith("4 tensors: 3 ok, 1 FAIL (0.bias), 0 unchecked")
    text = str(report)
    assert text.splitlines()[-1] == report.summary() and "FAIL" in text
    assert report.to_markdown().startswith("| name |")
    d = {r["name"]: r for r in report.to_dicts()}
    assert d["0.bias"]["verdict"] == "FAIL" and d["1.weight"]["verdict"] == "ok"


# ---- the statistics against scipy ---------------------------------------------------------------

def test_ks_matches_scipy():
    gen = torch.Generator().manual_seed(0)
    for n in (5, 40, 1000, 20000):
        u = torch.rand(n, dtype=torch.float64, generator=gen) ** 1.05
        d, p = ks_uniform(u)
        ref = st.kstest(u.numpy(), "uniform")
        assert d == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)


def test_ks_fallback_without_scipy_is_close(monkeypatch):
    u = torch.rand(3000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) ** 1.03
    ref = st.kstest(u.numpy(), "uniform").pvalue
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    _, p = ks_uniform(u)
    assert p == pytest.approx(ref, rel=0.05)


def test_chi2_and_extreme_p_values_match_scipy():
    for stat, df in ((3.0, 7), (120.0, 100), (80.0, 100), (1e6 + 3000, 10**6)):
        want = 2 * min(st.chi2.cdf(stat, df), st.chi2.sf(stat, df))
        assert chi2_two_sided_p(stat, df) == pytest.approx(min(1.0, want), rel=1e-6)
    for z, n in ((4.0, 10), (6.0, 10**6), (3.0, 1000)):
        assert extreme_p(z, n) == pytest.approx(1 - (1 - 2 * st.norm.sf(z)) ** n, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_neighbours_are_the_adjacent_representable_values(dtype):
    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    finite = torch.unique(every[torch.isfinite(every)].float())  # sorted, -0 merged with +0
    vals = finite[1:-1].to(dtype)
    down, up = _neighbours(vals)
    assert torch.equal(down, finite[:-2].double()) and torch.equal(up, finite[2:].double())


def test_neighbours_float32_match_nextafter():
    x = torch.randn(10000, generator=torch.Generator().manual_seed(2)) * 10.0 ** torch.randint(-30, 30, (10000,))
    x = torch.cat([x, torch.tensor([0.0, -0.0, 1.0, -1.0])])
    down, up = _neighbours(x)
    assert torch.equal(up, torch.nextafter(x, torch.tensor(math.inf)).double())
    assert torch.equal(down, torch.nextafter(x, torch.tensor(-math.inf)).double())


def test_moments_match_torch():
    x = torch.randn(3 * (1 << 22) + 17, generator=torch.Generator().manual_seed(3)) * 0.3 + 0.1
    m = moments(x, centre=0.1, low=-1.0, high=1.0)
    xd = x.double()
    assert m.n == x.numel() and m.mean == pytest.approx(float(xd.mean()), rel=1e-9)
    assert m.var == pytest.approx(float(xd.var(unbiased=False)), rel=1e-9)
    assert m.sq_dev == pytest.approx(float(((xd - 0.1) ** 2).mean()), rel=1e-9)
    assert (m.min, m.max) == (float(x.min()), float(x.max()))
    assert m.outside == int(((x < -1) | (x > 1)).sum()) and m.nonfinite == 0


def test_trunc_normal_moments_match_scipy():
    from fastinit.describe import describe

    for mean, std, a, b in ((0.0, 0.02, -0.04, 0.04), (0.3, 1.0, -2.0, 0.5), (0.0, 1.0, -2.0, 2.0)):
        d = describe(S.TruncNormal(mean, std, a, b), (3, 3))
        ref = st.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
        assert d.mean() == pytest.approx(ref.mean(), rel=1e-9, abs=1e-15)
        assert d.std() == pytest.approx(ref.std(), rel=1e-6)
        centre = ref.mean()
        assert d.central_moment(4) == pytest.approx(ref.expect(lambda x, c=centre: (x - c) ** 4), rel=1e-5)
        x = torch.linspace(a, b, 11, dtype=torch.float64)
        np.testing.assert_allclose(d.cdf(x).numpy(), ref.cdf(x.numpy()), rtol=1e-9, atol=1e-12)


# ---- sharded (DTensor) models: the local shard, on 2 gloo ranks ---------------------------------

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(32, 70)
        self.emb = nn.Embedding(90, 32, padding_idx=3)
        self.norm = nn.LayerNorm(32)


def _worker(rank: int, world: int, out_dir: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    m = Tiny()
    for sub in (m.up, m.emb):
        fully_shard(sub, mesh=mesh)
    fully_shard(m, mesh=mesh)
    from test_explain import executed_entries, planned_entries

    report = fastinit.explain(m)
    with executed_entries() as seen:
        fastinit.apply(m, seed=11)
    same_plan = planned_entries(report) == seen and len(seen) > 0
    good = audit(m)
    with torch.no_grad():
        if rank == 1:
            m.up.weight.to_local().mul_(3)
        if rank == 0:
            m.emb.weight.to_local()[3, 0] = 1.0  # rank 0 holds the padding row
    bad = audit(m)
    out = {"same_plan": same_plan, "good": {r.name: (r.verdict, r.local_shard, r.shape, r.checked) for r in good},
           "bad": {r.name: r.verdict for r in bad}}
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.mark.skipif(not torch.distributed.is_available() or sys.platform != "linux",
                    reason="needs torch.distributed with gloo and fork")
def test_dtensor_model_audits_its_local_shards(tmp_path):
    run_on_ranks(_worker, 2, str(tmp_path))
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for r in range(2):
        assert res[r]["same_plan"]  # explain's plan of the local shards is the one apply executes
        good = res[r]["good"]
        assert all(v[0] == "ok" for v in good.values()), good
        assert good["up.weight"][1] and good["up.weight"][2] == (35, 32) and good["up.weight"][3] == 35 * 32
        assert good["emb.weight"][2] == (45, 32)
    assert res[1]["bad"]["up.weight"] == "FAIL" and res[0]["bad"]["up.weight"] == "ok"
    assert res[0]["bad"]["emb.weight"] == "FAIL" and res[1]["bad"]["emb.weight"] == "ok"
