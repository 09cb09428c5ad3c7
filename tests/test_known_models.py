"""The default policy's one-walk plan (fastinit.known_models): the same specs and values as recording, and a
refusal (None: record as usual) wherever recording could give something else."""

import importlib
import math

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import fastinit
from fastinit import known_inits, known_models
from fastinit.known_models import known_model_plan, known_model_specs
from fastinit.models import GPT2, GPT2Config
from fastinit.plan import Entry, Plan
from fastinit.policy import default_init, record_callable, tracked_tensors
from fastinit.specs import Constant

apply_mod = importlib.import_module("fastinit.apply")


def _recorded(model):
    """What running every module's init code under the recorder gives: (name, spec, post ops, seed)."""
    return [(p.name, p.spec, p.post_ops, p.seed)
            for p in record_callable(model, default_init, tracked_tensors(model), lambda p: None)]


def _walked(model):
    return [(p.name, p.spec, p.post_ops, p.seed) for p in known_model_specs(model)]


class Block(nn.Module):  # no init code of its own: a container
    def __init__(self, d=6):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, 2 * d)
        self.out = nn.Linear(2 * d, d, bias=False)
        self.register_buffer("scale", torch.ones(d))  # tracked, written by nobody


def _zoo():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Embedding(11, 6), Block(), Block(), nn.ModuleList([nn.Conv1d(6, 4, 3), nn.Conv2d(4, 4, (3, 2), groups=2)]),
        nn.ConvTranspose1d(4, 3, 2), nn.RMSNorm(6), nn.GroupNorm(2, 4), nn.LayerNorm(6, elementwise_affine=False),
        nn.Linear(6, 1))


@pytest.fixture(autouse=True)
def fresh_verification(monkeypatch):
    # every test starts with nothing verified, so the walk's own one-time check runs inside the test
    monkeypatch.setattr(known_inits, "_VERIFIED", {})
    monkeypatch.setattr(known_inits, "_BY_CLASS", {})
    monkeypatch.setattr(known_models, "_BY_CLASS", {})


def test_walk_gives_what_recording_gives():
    model = _zoo()
    assert _walked(model) == _recorded(model)
    assert all(known_inits.verified(layout) for layout in known_inits._VERIFIED)


def assert_as_recorded(make, monkeypatch, seed, prefix=""):
    """``fastinit.apply`` on ``make()`` gives the report and the values (bitwise) of recording it (the walk off)."""
    torch.manual_seed(0)
    fast = fastinit.apply(make(), seed=seed, prefix=prefix)
    fast_report = fastinit.last_report()
    with monkeypatch.context() as m:
        m.setattr(apply_mod, "known_model_plan", lambda *a: None)
        torch.manual_seed(0)
        slow = fastinit.apply(make(), seed=seed, prefix=prefix)
        slow_report = fastinit.last_report()
    assert fast_report == slow_report
    for (name, a), b in zip(fast.state_dict().items(), slow.state_dict().values()):
        assert torch.equal(a, b), name


def test_apply_values_are_bitwise_those_of_recording(monkeypatch):
    for prefix in ("", "encoder"):
        assert_as_recorded(_zoo, monkeypatch, 5, prefix)


def test_apply_keeps_torchs_version_counters_and_leaves_the_rng_alone():
    model, eager = _zoo(), _zoo()
    before = {n: p._version for n, p in model.named_parameters()}
    eager.apply(default_init)
    state = torch.get_rng_state()
    fastinit.apply(model, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    for (n, p), q in zip(model.named_parameters(), eager.parameters()):
        assert p._version - before[n] == q._version - before[n], n  # one in-place op per init call, as torch


def test_seed_none_is_drawn_from_the_generator_after_the_walk():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = fastinit.apply(_zoo(), generator=g1), fastinit.apply(_zoo(), generator=g2)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(g1.get_state(), torch.Generator().manual_seed(3).get_state())  # a seed was drawn


def _tied(declared=None):
    m = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
    m[1].weight = m[0].weight
    if declared is not None:
        m._tied_weights_keys = declared  # {target: source}
    return m


class Holder(nn.Module):  # a container holding a tied parameter itself: it writes nothing
    def __init__(self, p):
        super().__init__()
        self.p = p


def _tied_to_a_container():
    m = _tied()
    m.extra = Holder(m[0].weight)
    m._tied_weights_keys = {"0.weight": "extra.p"}
    return m


TIED = {
    "source first (gpt-2's head)": lambda: _tied({"1.weight": "0.weight"}),
    "source later": lambda: _tied({"0.weight": "1.weight"}),
    "source a container": _tied_to_a_container,
    "gpt-2 layout": lambda: GPT2(GPT2Config(n_layer=2, d_model=8, vocab=16, ctx=8)),
}


@pytest.mark.parametrize("make", TIED.values(), ids=TIED.keys())
def test_declared_ties_take_the_sources_init_as_recording_does(make, monkeypatch):
    assert known_model_specs(make()) is not None
    assert_as_recorded(make, monkeypatch, 4)


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.empty(3))

    def reset_parameters(self):
        nn.init.zeros_(self.w)


class OwnApply(nn.Sequential):
    def apply(self, fn):
        return super().apply(fn)


def _shared_module():
    lin = nn.Linear(3, 3)
    return nn.Sequential(lin, nn.ReLU(), lin)


def _instance_init():
    lin = nn.Linear(3, 2)
    lin.reset_parameters = lambda: nn.init.zeros_(lin.weight)
    return nn.Sequential(lin)


def _view_tie():
    base = torch.empty(12)
    a, b = nn.Linear(2, 3, bias=False), nn.Linear(2, 3, bias=False)
    a.weight, b.weight = nn.Parameter(base[:6].view(3, 2)), nn.Parameter(base[6:].view(3, 2))  # one storage
    return nn.Sequential(a, b)


def _meta():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(3, 2))


REFUSED = {
    "module with its own init code": lambda: nn.Sequential(nn.Linear(3, 2), Custom()),
    "tied parameter": _tied,
    "one module in two places": _shared_module,
    "a class overriding apply": lambda: OwnApply(nn.Linear(3, 2)),
    "init code set on an instance": _instance_init,
    "two parameters on one storage": _view_tie,
    "meta parameters": _meta,
    "channels_last weight": lambda: nn.Sequential(nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)),
    "zero-element weight": lambda: nn.Sequential(nn.Linear(0, 3)),
    "embedding with a padding row": lambda: nn.Sequential(nn.Embedding(5, 3, padding_idx=0)),
    "batch norm (writes buffers)": lambda: nn.Sequential(nn.BatchNorm1d(3)),
}


@pytest.mark.parametrize("make", REFUSED.values(), ids=REFUSED.keys())
def test_what_the_walk_cannot_see_is_recorded_instead(make):
    assert known_model_specs(make()) is None


@pytest.mark.parametrize("make", [m for k, m in REFUSED.items() if k != "meta parameters"],
                         ids=[k for k in REFUSED if k != "meta parameters"])
def test_refused_models_still_get_the_recorded_values(make, monkeypatch):
    assert_as_recorded(make, monkeypatch, 2)


def test_meta_parameters_get_applys_error():
    with pytest.raises(RuntimeError, match="meta device"):
        fastinit.apply(_meta())


def test_an_active_torch_function_mode_or_recording_sees_the_calls():
    class Count(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    model = nn.Sequential(nn.Linear(3, 2))
    with Count():
        assert known_model_specs(model) is None
    with fastinit.recording(model, seed=0):
        assert known_model_specs(model) is None


def test_first_module_of_a_layout_is_checked_against_recording(monkeypatch):
    # as if torch's Linear initialized its bias otherwise: the walk's one-time check sees it and gives up
    monkeypatch.setitem(known_inits._KNOWN, nn.Linear.reset_parameters,
                        lambda m: [("weight", "kaiming_uniform_", (math.sqrt(5),)), ("bias", "uniform_", (-9.0, 9.0))])
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(3, 2))
    assert known_model_specs(model) is None
    assert False in known_inits._VERIFIED.values()
    assert known_model_specs(model) is None  # and stays off for that layout


def test_init_code_that_reads_is_not_a_table(monkeypatch):
    def reading(self):
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        with torch.no_grad():
            self.weight.mul_(2)  # reads what it wrote
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    monkeypatch.setattr(nn.Linear, "reset_parameters", reading)
    monkeypatch.setitem(known_inits._KNOWN, reading, known_inits._linear)
    model = nn.Sequential(nn.Linear(3, 2))
    before = model[0].weight.detach().clone()
    assert known_model_specs(model) is None
    assert torch.equal(model[0].weight, before)  # the check wrote nothing (the read was refused, not flushed)


def test_plan_given_storages_keeps_entries_and_refuses_repeats():
    a, b = torch.empty(3), torch.empty(4)
    ea, eb = Entry("a", a, Constant(1.0), 1), Entry("b", b, Constant(2.0), 2)
    sa, sb = a.untyped_storage()._cdata, b.untyped_storage()._cdata
    plan = Plan([ea, eb], storages=[sa, sb])
    assert plan.entries == [ea, eb]
    plan.execute(0)
    assert (a == 1).all() and (b == 2).all()
    with pytest.raises(ValueError, match="one different storage id per entry"):
        Plan([ea, eb], storages=[sa, sa])
    with pytest.raises(ValueError, match="one different storage id per entry"):
        Plan([ea, eb], storages=[sa])


def test_known_model_plan_keys_come_from_the_prefix():
    from fastinit.keys import key_for

    plan = known_model_plan(nn.Sequential(nn.Linear(3, 2)), "enc.")
    assert [(e.name, e.key) for e in plan.entries] == [("0.weight", key_for("enc.0.weight")),
                                                        ("0.bias", key_for("enc.0.bias"))]
