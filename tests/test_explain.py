"""fastinit.explain: a dry run that writes nothing and matches, row for row, the plan apply executes.

The executed plan is observed by wrapping ``Plan.execute`` during a real ``fastinit.apply``; the
numbers are held against what torch's own init functions pass to ``uniform_``/``normal_``/``fill_``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
import torch
from init_zoo import zoo
from torch import nn

import fastinit
from fastinit import specs as S
from fastinit.describe import describe, spec_call
from fastinit.explain import EAGER_NOTE, explain
from fastinit.models import construct
from fastinit.plan import Plan
from fastinit.tables import P_CENTER, P_HALF_WIDTH, P_MEAN, P_STD


def snapshot(model: nn.Module) -> dict:
    """Every parameter and buffer: its object, a copy of its values and its version counter."""
    out = {}
    for n, t in list(model.named_parameters()) + list(model.named_buffers()):
        out[n] = (t, t.detach().clone(), t._version)
    return out


def assert_untouched(model: nn.Module, snap: dict) -> None:
    now = dict(list(model.named_parameters()) + list(model.named_buffers()))
    assert set(now) == set(snap)
    for n, (obj, values, version) in snap.items():
        assert now[n] is obj, f"{n} was replaced"
        assert now[n]._version == version, f"{n} was written (version counter moved)"
        assert torch.equal(now[n].detach(), values), f"{n} changed"


def entry_facts(e) -> tuple:
    """What an entry writes where: name, spec, resolved numbers, key, backend, global shape, shard map, memory."""
    return (e.name, e.spec, e.resolved, e.key, e.backend, e.shape, e.shard, e.tensor.data_ptr(),
            tuple(e.tensor.shape), tuple(e.tensor.stride()))


@contextmanager
def executed_entries():
    """Every entry a real Plan.execute validated and wrote, in order (see entry_facts)."""
    seen = []
    original = Plan.execute

    def spy(self, seed, backend="auto"):
        out = original(self, seed, backend)
        seen.extend(entry_facts(e) for e in self.entries)
        return out

    with mock.patch.object(Plan, "execute", spy):
        yield seen


def planned_entries(report) -> list:
    out = []
    for p in report.planned:
        for entries in p.flush_entries:
            out.extend(entry_facts(e) for e in entries)
    for p in report.planned:
        out.extend(entry_facts(e) for e in p.entries)
    return out


def f32(x: float) -> float:
    return float(np.float32(x))


def assert_rows_match_resolved(report) -> None:
    """The numbers a row prints are the kernel's numbers before their per-dtype rounding."""
    for p in report.planned:
        row = report[p.name]
        for e in p.entries:
            assert row.key == e.key == fastinit.key_for(p.name)
            assert row.spec == spec_call(e.spec)
            assert e.backend in row.backend.split("+")
            r, n = e.resolved, row.numbers
            if row.distribution == "uniform":
                assert f32((n["a"] + n["b"]) / 2) == f32(r.params[P_CENTER])
                assert f32((n["b"] - n["a"]) / 2) == f32(r.params[P_HALF_WIDTH])
            elif row.distribution in ("normal", "trunc_normal"):
                assert f32(n["mean"]) == f32(r.params[P_MEAN]) and f32(n["std"]) == f32(r.params[P_STD])
            elif row.distribution == "constant":
                assert n["val"] == r.params[P_CENTER]


def deep_init(m: nn.Module) -> None:
    """A tutorial-style init_weights that reads what it initialized (so apply flushes it eagerly)."""
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.02)
        m.weight.abs().sum()  # reads the pending weight (a tutorial's print): written eagerly right here
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        m.weight.data.mul_(0.5)  # reads and changes it: the values are no spec's


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 32)
        self.norm = nn.LayerNorm(32)
        self.emb = nn.Embedding(20, 32, padding_idx=2)
        self.bn = nn.BatchNorm1d(32)


CASES = [(make, "default") for make in zoo()] + [
    (lambda: construct("gpt2-tiny"), "gpt2"), (lambda: construct("llama-tiny"), "default"),
    (Stack, deep_init), (Stack, "xavier_normal"), (Stack, "bert"), (Stack, "vit"),
]


@pytest.mark.parametrize("make,policy", CASES, ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", ""))
def test_explain_writes_nothing_and_matches_the_executed_plan(make, policy):
    torch.manual_seed(0)
    model = make()
    snap = snapshot(model)
    report = explain(model, policy)
    assert_untouched(model, snap)  # values, version counters and objects, num_batches_tracked included
    with executed_entries() as seen:
        fastinit.apply(model, policy, seed=1)
    assert planned_entries(report) == seen
    assert_rows_match_resolved(report)
    names = {r.name for r in report}
    assert names == set(fastinit.policy.tracked_tensors(model))


def test_numbers_are_what_torch_passes_to_its_kernels():
    """Fans, gains and bounds: exactly the double torch's own kaiming/xavier functions compute."""
    calls = {}

    def rec(kind):
        def fn(self, *args, **kwargs):
            calls[id(self)] = (kind, [float(a) for a in args])
            return self
        return fn

    model = nn.Sequential(nn.Linear(13, 7), nn.Conv2d(3, 8, (3, 5)), nn.Linear(40, 30))
    with mock.patch.object(torch.Tensor, "uniform_", rec("uniform")):
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        torch.nn.init.xavier_uniform_(model[2].weight, gain=1.7)
        xavier_call = calls[id(model[2].weight)]
    report = explain(model)
    for name, t in model.named_parameters():
        if name == "2.weight":
            continue
        kind, (a, b) = calls[id(t)]
        row = report[name]
        assert row.distribution == kind and row.numbers == {"a": a, "b": b}, name
    w = report["1.weight"]
    assert (w.fan_in, w.fan_out) == torch.nn.init._calculate_fan_in_and_fan_out(model[1].weight)
    assert w.gain == torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    xr = explain(model, fastinit.Rules([("2.weight", S.XavierUniform(1.7))], otherwise=None))["2.weight"]
    assert xr.numbers == {"a": xavier_call[1][0], "b": xavier_call[1][1]} and xr.gain == 1.7
    assert (xr.fan_in, xr.fan_out) == (40, 30)


def test_eager_flush_and_in_place_changes_are_reported():
    model = Stack()
    report = explain(model, deep_init)
    assert report["a.weight"].eager and EAGER_NOTE in report["a.weight"].note
    assert report["a.weight"].numbers == {"mean": 0.0, "std": 0.02}
    assert "changed in place" in report["norm.weight"].note
    assert report["emb.weight"].note.startswith("not written")
    assert not report["a.bias"].eager and report["a.bias"].distribution == "constant"


def test_init_code_that_needs_values_is_refused_loudly():
    def branchy(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight)
            if m.weight.abs().max() > 10:  # a data-dependent branch: a dry run has no values to take it on
                nn.init.zeros_(m.weight)

    model = Stack()
    snap = snapshot(model)
    with pytest.raises(RuntimeError, match="needs the values of a tensor it reads"):
        explain(model, branchy)
    assert_untouched(model, snap)


def test_tied_names_once_with_aliases_and_padding_writes():
    report = explain(construct("gpt2-tiny"))
    assert "lm_head.weight" not in [r.name for r in report]
    assert report["wte.weight"].aliases == ("lm_head.weight",)
    assert report["lm_head.weight"] is report["wte.weight"]
    emb = explain(nn.Embedding(10, 4, padding_idx=3))["weight"]
    assert emb.post_writes == 1 and "partial constant write" in emb.note


def test_meta_model_is_explained_without_backend():
    with torch.device("meta"):
        model = nn.Linear(8, 4)
    report = explain(model)
    bound = math.sqrt(3.0) * (torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(8))
    assert report["weight"].backend == "" and report["weight"].numbers == {"a": -bound, "b": bound}
    with pytest.raises(RuntimeError, match="meta device"):
        fastinit.audit(model)


def test_bad_spec_raises_as_apply_does_and_writes_nothing():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    rules = fastinit.Rules([("0.*", S.Constant(1.0)), ("1.weight", S.Uniform(1.0, 0.0))])
    snap = snapshot(model)
    with pytest.raises(RuntimeError) as mine:
        explain(model, rules)
    assert_untouched(model, snap)
    with pytest.raises(RuntimeError) as theirs:
        torch.empty(3).uniform_(1.0, 0.0)
    assert str(mine.value) == str(theirs.value)
    with pytest.raises(ValueError, match="unknown backend"):
        explain(model, backend="nope")


def test_backend_choice_follows_apply_including_fallbacks():
    model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 4))
    rules = fastinit.Rules([("1.weight", S.Orthogonal())])
    report = explain(model, rules)
    assert report["1.weight"].backend == "torch" and report["1.weight"].distribution == "orthogonal"
    ref = explain(model, backend="reference")
    assert {r.backend for r in ref} == {"reference"}
    fastinit.apply(model, rules, seed=0)
    torch_group = next(g for g in fastinit.last_report() if g.backend == "torch")
    assert report["1.weight"].passed_over == torch_group.passed_over


def test_report_as_data_markdown_and_text():
    report = explain(nn.Linear(3, 2))
    dicts = report.to_dicts()
    assert [d["name"] for d in dicts] == ["weight", "bias"]
    assert dicts[0]["numbers"] == report["weight"].numbers and dicts[0]["key"] == fastinit.key_for("weight")
    md = report.to_markdown().splitlines()
    assert md[0].startswith("| name |") and md[1].startswith("|---") and len(md) == 4
    text = str(report).splitlines()
    assert text[0].split()[:3] == ["name", "shape", "dtype"] and "weight" in text[2] and "uniform" in text[2]


def test_describe_refuses_what_it_does_not_know():
    class Odd(S.Spec):
        pass

    with pytest.raises(TypeError, match="does not know"):
        describe(Odd(), (2, 2))
