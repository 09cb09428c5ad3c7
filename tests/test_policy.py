"""Policies: "default" matches each module's constructor, recorded callables match eager model.apply,
rules and presets, determinism, and the edge cases (tied, non-contiguous, zero-element, meta, int buffers)."""

import math
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
import scipy.stats as st
import torch
from init_zoo import Custom, zoo  # the default zoo, shared with test_explain and test_audit
from torch import nn

import fastinit
from fastinit import specs as S
from fastinit.models import GPT2, GPT2Config
from fastinit.policy import resolve_policy, tracked_tensors
from fastinit.tables import Resolved


def f32(x):
    return float(np.float32(x))


@contextmanager
def capture_writes():
    """Whole-tensor writes torch makes (uniform_/normal_/fill_/zero_), by memory identity; nothing is run."""
    log = {}

    def ident(t):
        return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))

    def rec(kind):
        def fn(self, *args, **kwargs):
            kwargs.pop("generator", None)
            log[ident(self)] = (kind, [float(a) for a in args] + [float(v) for v in kwargs.values()])
            return self
        return fn

    with mock.patch.object(torch.Tensor, "uniform_", rec("uniform")), \
            mock.patch.object(torch.Tensor, "normal_", rec("normal")), \
            mock.patch.object(torch.Tensor, "fill_", rec("fill")), \
            mock.patch.object(torch.Tensor, "zero_", rec("zero")):
        yield log, ident


def as_resolved(kind, args) -> Resolved:
    if kind == "uniform":
        a, b = (args + [0.0, 1.0][len(args):])[:2]
        return S.Uniform(a, b).resolve(())
    if kind == "normal":
        m, s = (args + [0.0, 1.0][len(args):])[:2]
        return S.Normal(m, s).resolve(())
    if kind == "fill":
        return S.Constant(args[0]).resolve(())
    return S.Constant(0.0).resolve(())


@pytest.mark.parametrize("make", zoo(), ids=lambda f: type(f()).__name__)
def test_default_policy_matches_the_constructor(make):
    with capture_writes() as (log, ident):
        model = make()
    tracked = tracked_tensors(model)
    pending = {p.name: p for p in resolve_policy(model, "default", tracked, flush=lambda p: None)}
    for name, t in tracked.items():
        eager = log.get(ident(t))
        if eager is None and isinstance(model, nn.Transformer) and ".layers." in name:
            continue  # nn.Transformer deep-copies one constructed layer: the clones' memory was never written
        if isinstance(model, Custom) and name == "w":
            assert isinstance(pending[name].spec, S.Orthogonal)  # no fused form: runs through torch
            continue
        assert eager is not None, f"{name}: the constructor did not write it"
        assert name in pending, f"{name}: fastinit recorded nothing"
        assert pending[name].spec.resolve(tuple(t.shape)) == as_resolved(*eager), name
    assert set(pending) <= set(tracked)


def test_default_policy_values_padding_rows_and_running_stats():
    model = nn.Sequential(nn.Embedding(50, 8, padding_idx=4), nn.BatchNorm1d(8), nn.EmbeddingBag(20, 3, padding_idx=0))
    bn = model[1]
    bn.running_mean.fill_(3.0)
    bn.running_var.fill_(7.0)
    bn.num_batches_tracked.fill_(11)
    with torch.no_grad():
        model[0].weight.fill_(9.0)
    fastinit.apply(model, seed=5)
    assert (model[0].weight[4] == 0).all() and (model[0].weight[:4] != 0).all()
    assert (model[2].weight[0] == 0).all()
    assert (bn.running_mean == 0).all() and (bn.running_var == 1).all() and bn.num_batches_tracked.item() == 0
    assert (bn.weight == 1).all() and (bn.bias == 0).all()
    ref = torch.empty(50, 8)
    fastinit.init.normal_(ref, seed=5, key=fastinit.key_for("0.weight"))
    ref[4] = 0
    assert torch.equal(model[0].weight.detach(), ref)


def test_default_policy_linear_values_follow_torch_distribution():
    lin = nn.Linear(300, 400)
    fastinit.apply(lin, seed=1)
    bound = 1 / math.sqrt(300)
    assert st.kstest(lin.weight.detach().double().numpy().ravel(), st.uniform(-bound, 2 * bound).cdf).pvalue > 1e-4
    assert lin.bias.abs().max().item() < bound


# ---- callables from tutorials ------------------------------------------------------------------

def forum_init(m):  # the classic forum answer
    if isinstance(m, nn.Linear):
        torch.nn.init.xavier_uniform_(m.weight)
        m.bias.data.fill_(0.01)


def dcgan_init(m):  # the DCGAN tutorial
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def hf_style_init(m):  # transformers' _init_weights
    if isinstance(m, nn.Linear):
        m.weight.data.normal_(mean=0.0, std=0.02)
        if m.bias is not None:
            m.bias.data.zero_()
    elif isinstance(m, nn.Embedding):
        m.weight.data.normal_(mean=0.0, std=0.02)
        if m.padding_idx is not None:
            m.weight.data[m.padding_idx].zero_()
    elif isinstance(m, nn.LayerNorm):
        m.bias.data.zero_()
        m.weight.data.fill_(1.0)


def resnet_init(m):  # torchvision's ResNet
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.constant_(m.weight, 1)
        nn.init.constant_(m.bias, 0)


def timm_init(m):  # timm's ViT
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def net():
    return nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Flatten(), nn.Embedding(300, 64, padding_idx=1),
                         nn.LayerNorm(64), nn.Linear(64, 500), nn.Linear(500, 10))


@pytest.mark.parametrize("fn", [forum_init, dcgan_init, hf_style_init, resnet_init, timm_init])
def test_callable_policy_records_what_eager_apply_does(fn):
    model = net()
    with capture_writes() as (log, ident):
        model.apply(fn)
    tracked = tracked_tensors(model)
    pending = {p.name: p for p in resolve_policy(model, fn, tracked, flush=lambda p: None)}
    for name, t in tracked.items():
        eager = log.get(ident(t))
        if eager is None:
            assert name not in pending, f"{name}: eager left it alone"
        elif fn is not timm_init or not name.endswith("weight"):
            assert pending[name].spec.resolve(tuple(t.shape)) == as_resolved(*eager), name
        else:  # trunc_normal_ draws through its own algorithm; the spec is recorded whole
            assert pending[name].spec == S.TruncNormal(0.0, 0.02, -2.0, 2.0)


@pytest.mark.parametrize("fn", [forum_init, dcgan_init, hf_style_init, resnet_init, timm_init])
def test_callable_policy_values_match_eager_distributions(fn):
    torch.manual_seed(0)
    eager, fused = net(), net()
    fused.load_state_dict(eager.state_dict())
    eager.apply(fn)
    fastinit.apply(fused, fn, seed=2)
    for (name, a), (_, b) in zip(eager.named_parameters(), fused.named_parameters()):
        a, b = a.detach().double().numpy().ravel(), b.detach().double().numpy().ravel()
        if np.array_equal(a, b):
            continue  # constants, and tensors the function leaves alone
        assert a.size >= 64, name
        assert st.ks_2samp(a, b).pvalue > 1e-4, name
    if fn is forum_init:
        assert (fused[5].bias == np.float32(0.01)).all()
    if fn is hf_style_init:
        assert (fused[3].weight[1] == 0).all()


def test_reads_after_a_pending_init_see_the_init_values():
    def scaled(m):
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0.0, 1.0)
            m.weight.data.mul_(0.5)  # reads the pending values: flushed first, then scaled

    lin = nn.Linear(20, 30)
    fastinit.apply(lin, scaled, seed=4)
    ref = torch.empty(30, 20)
    fastinit.init.normal_(ref, seed=4, key=fastinit.key_for("weight"))
    assert torch.equal(lin.weight.detach(), ref * 0.5)


def test_partial_writes_are_replayed_in_order():
    def fn(m):
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -1, 1)
            m.weight.data[0].fill_(5.0)
            m.weight.data[:, 1] = 7.0
            nn.init.constant_(m.bias, 2.0)
            m.bias.data[3].zero_()

    lin = nn.Linear(6, 5)
    fastinit.apply(lin, fn, seed=1)
    assert (lin.weight[0, :1] == 5).all() and (lin.weight[0, 2:] == 5).all() and (lin.weight[:, 1] == 7).all()
    assert lin.weight[1:, 2:].abs().max() <= 1 and (lin.weight[1:, 0] != 5).all()
    assert lin.bias.tolist() == [2.0, 2.0, 2.0, 0.0, 2.0]


# ---- rules and presets -------------------------------------------------------------------------

def test_rules_first_match_wins_and_kinds_of_match():
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 4))
    rules = fastinit.Rules([
        ("2.weight", S.Constant(3.0)),
        (nn.LayerNorm, None),
        (lambda n, t, m: n.endswith("bias"), S.Constant(-1.0)),
        (nn.Linear, S.Normal(0.0, 0.5)),
    ])
    with torch.no_grad():
        model[1].weight.fill_(9.0)
    fastinit.apply(model, rules, seed=0)
    assert (model[2].weight == 3).all()
    assert (model[1].weight == 9).all()
    assert (model[0].bias == -1).all() and (model[2].bias == -1).all()
    assert model[0].weight.std().item() > 0.2


def test_strict_rules_name_every_unmatched_parameter():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    with pytest.raises(ValueError, match=r"0\.bias, 1\.bias$"):
        fastinit.apply(model, fastinit.Rules([("*.weight", S.Normal())], strict=True).add("0.weight", S.Normal()),
                       seed=0)


def test_rules_default_action_uses_module_init():
    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
    fastinit.apply(model, fastinit.Rules([("0.*", S.Constant(0.0))], otherwise="default"), seed=3)
    assert (model[0].weight == 0).all()
    assert model[1].weight.abs().max().item() <= 1 / math.sqrt(10)


def gpt():
    return GPT2(GPT2Config(n_layer=3, d_model=32, vocab=100, ctx=16))


def test_gpt2_preset():
    model = gpt()
    tracked = tracked_tensors(model)
    pending = {p.name: p.spec for p in resolve_policy(model, "gpt2", tracked, flush=lambda p: None)}
    assert pending["h.0.attn.c_proj.weight"] == S.Normal(0.0, 0.02 / math.sqrt(2 * 3))
    assert pending["h.2.mlp.c_proj.weight"] == S.Normal(0.0, 0.02 / math.sqrt(2 * 3))
    assert pending["h.1.mlp.c_fc.weight"] == S.Normal(0.0, 0.02)
    assert pending["wte.weight"] == S.Normal(0.0, 0.02)
    assert pending["h.1.mlp.c_fc.bias"] == S.Constant(0.0)
    assert pending["h.1.ln_1.weight"] == S.Constant(1.0) and pending["ln_f.bias"] == S.Constant(0.0)
    assert "lm_head.weight" not in pending  # tied to wte


@pytest.mark.parametrize("name", ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "bert",
                                  "vit"])
def test_presets_cover_every_parameter(name):
    model = nn.Sequential(nn.Embedding(20, 8, padding_idx=0), nn.Linear(8, 16), nn.LayerNorm(16), nn.Conv1d(16, 4, 3))
    fastinit.apply(model, name, seed=1)
    assert (model[2].weight == 1).all() and (model[2].bias == 0).all()
    assert (model[1].bias == 0).all()
    if name in ("bert",):
        assert (model[0].weight[0] == 0).all()
        assert abs(model[1].weight.std().item() - 0.02) < 0.005
    if name == "vit":
        assert model[1].weight.abs().max().item() <= 2.0


def test_unknown_policy_and_preset_raise():
    with pytest.raises(ValueError, match="unknown preset"):
        fastinit.apply(nn.Linear(2, 2), "nope")
    with pytest.raises(TypeError):
        fastinit.apply(nn.Linear(2, 2), 42)
    with pytest.raises(ValueError, match="unknown backend"):
        fastinit.apply(nn.Linear(2, 2), backend="gpu9000")


# ---- determinism and edge cases ----------------------------------------------------------------

def test_same_seed_same_values_and_manual_seed_governs_none():
    a, b = gpt(), gpt()
    fastinit.apply(a, seed=7)
    fastinit.apply(b, seed=7)
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.equal(x, y)
    torch.manual_seed(3)
    fastinit.apply(a)
    first = [p.clone() for p in a.parameters()]
    fastinit.apply(a)
    assert not torch.equal(first[0], a.wte.weight)  # successive calls differ, as torch's
    torch.manual_seed(3)
    fastinit.apply(b)
    for x, y in zip(first, b.parameters()):
        assert torch.equal(x, y)


def test_renaming_or_adding_a_module_leaves_others_unchanged():
    a = nn.ModuleDict({"enc": nn.Linear(5, 5), "dec": nn.Linear(5, 3)})
    b = nn.ModuleDict({"enc": nn.Linear(5, 5), "head": nn.Linear(5, 3), "extra": nn.Linear(4, 4)})
    fastinit.apply(a, seed=1)
    fastinit.apply(b, seed=1)
    assert torch.equal(a["enc"].weight, b["enc"].weight) and torch.equal(a["enc"].bias, b["enc"].bias)
    assert not torch.equal(a["dec"].weight, b["head"].weight)


def test_nothing_is_written_when_validation_fails():
    model = nn.Sequential(nn.Linear(4, 4), nn.Conv2d(2, 2, 3), nn.Linear(4, 4))
    before = [p.clone() for p in model.parameters()]
    rules = fastinit.Rules([(nn.Conv2d, S.Eye()), (nn.Linear, S.Normal())])  # eye_ on a 4-D weight: invalid
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        fastinit.apply(model, rules, seed=0)
    for x, y in zip(before, model.parameters()):
        assert torch.equal(x, y)


def test_meta_parameters_get_a_clear_error():
    with torch.device("meta"):
        model = nn.Linear(3, 3)
    with pytest.raises(RuntimeError, match="meta device.*materialize"):
        fastinit.apply(model, seed=0)


def test_tied_weights_are_initialized_once_under_the_first_name():
    model = gpt()
    fastinit.apply(model, seed=2)
    assert model.lm_head.weight is model.wte.weight
    # As eager construction leaves it: wte created the Parameter and lm_head took it after its own init, so the
    # tensor holds wte's normal_ (the declared tie source), written once, keyed by the first name (fastinit.ties).
    ref = torch.empty(100, 32)
    fastinit.init.normal_(ref, seed=2, key=fastinit.key_for("wte.weight"))
    assert torch.equal(model.wte.weight.detach(), ref)


def test_non_contiguous_parameter_gets_the_row_major_values():
    m = nn.Module()
    m.w = nn.Parameter(torch.empty(7, 5).t())  # shape (5, 7), column-major memory
    assert not m.w.is_contiguous()
    fastinit.apply(m, fastinit.Rules([("w", S.Uniform(-1, 1))]), seed=9)
    ref = torch.empty(5, 7)
    fastinit.init.uniform_(ref, -1, 1, seed=9, key=fastinit.key_for("w"))
    assert torch.equal(m.w.detach(), ref)


def test_zero_element_and_integer_buffers():
    m = nn.Module()
    m.empty = nn.Parameter(torch.empty(0, 4))
    m.lin = nn.Linear(0, 3)
    m.register_buffer("steps", torch.tensor([5], dtype=torch.int64))
    m.register_buffer("mask", torch.ones(3, dtype=torch.bool))
    with pytest.warns(UserWarning, match="zero-element"):
        fastinit.apply(m, seed=1)
    assert m.steps.item() == 5 and m.mask.all()
    fastinit.apply(m, fastinit.Rules([("empty", S.Normal())]), seed=1)


def test_backends_report_and_auto_choice():
    info = fastinit.backends()
    assert info["reference"] is None and info["torch"] is None
    assert set(info) == {"triton", "cuda", "cpu", "reference", "torch"}
    model = nn.Linear(8, 8)
    fastinit.apply(model, seed=0)
    (group,) = fastinit.last_report()
    assert group.backend == ("cpu" if info["cpu"] is None else "reference") and group.tensors == 2
    if info["cpu"] is not None:  # auto says why it fell back
        assert any(r.startswith("cpu: ") for r in group.passed_over)


def test_explicit_backend_that_cannot_take_a_tensor_raises_with_reasons():
    with pytest.raises(RuntimeError, match="cannot take every tensor"):
        fastinit.apply(nn.Linear(2, 2), backend="cuda", seed=0)


def test_auto_says_why_it_falls_back(monkeypatch):
    from fastinit.backends import get_backend

    cpu = get_backend("cpu")
    monkeypatch.setattr(type(cpu), "unavailable", lambda self: "pretend the extension is missing")
    fastinit.apply(nn.Linear(4, 4), seed=0)
    (group,) = fastinit.last_report()
    assert group.backend == "reference"
    assert group.passed_over == ("cpu: pretend the extension is missing",)


# ---- review cases: reads through comparisons, rules that leave tensors alone, overlapping memory ----

def test_a_comparison_inside_init_code_sees_the_pending_value():
    seen = []

    def fn(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 5.0)
            seen.append(bool((m.weight == 5.0).all()))
            seen.append(m.weight.reshape(-1)[3].item())

    fastinit.apply(nn.Linear(3, 4), fn, seed=0)
    assert seen == [True, 5.0]


def test_partial_setitem_is_replayed_not_flushed():
    def fn(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight)
            m.weight.data[0] = 1.0

    lin = nn.Linear(3, 4)
    flushed = []
    (p,) = resolve_policy(lin, fn, tracked_tensors(lin), flush=lambda q: flushed.append(q.name))
    assert flushed == [] and p.name == "weight" and len(p.post_ops) == 1
    fastinit.apply(lin, fn, seed=1)
    assert (lin.weight[0] == 1).all() and (lin.weight[1:] != 1).all()


def test_rule_none_is_never_written_by_another_tensors_default():
    lin = nn.Linear(6, 6)
    with torch.no_grad():
        lin.bias.fill_(7.0)
    fastinit.apply(lin, fastinit.Rules([("bias", None)], otherwise="default"), seed=0)
    assert (lin.bias == 7).all()
    assert lin.weight.abs().max().item() <= 1 / math.sqrt(6)


def test_expanded_parameter_is_refused_like_torch_and_nothing_is_written():
    m = nn.Module()
    m.a = nn.Parameter(torch.zeros(3))
    m.b = nn.Parameter(torch.zeros(1, 4).expand(3, 4))
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        fastinit.apply(m, fastinit.Rules([("*", S.Normal())]), seed=0)
    assert (m.a == 0).all()


def test_overlapping_views_under_two_names_are_refused():
    m = nn.Module()
    m.w = nn.Parameter(torch.zeros(4, 4))
    m.register_buffer("w_t", m.w.data.t())
    with pytest.raises(RuntimeError, match="overlapping memory"):
        fastinit.apply(m, fastinit.Rules([("w", S.Normal()), ("w_t", S.Constant(1.0))]), seed=0)
    assert (m.w == 0).all()


def test_unfused_spec_on_a_shard_is_refused():
    from fastinit.plan import Entry, Plan

    local = torch.zeros(2, 3)
    plan = Plan([Entry("w", local, S.Orthogonal(), key=1, global_shape=(4, 3))])
    with pytest.raises(NotImplementedError, match="no fused form"):
        plan.execute(seed=0)
    assert (local == 0).all()


def _call_forms():
    """Ways init code calls torch.nn.init: positional, keyword, mixed, defaults, generator (and bad calls)."""
    return [
        (nn.init.kaiming_uniform_, (), {}),
        (nn.init.kaiming_uniform_, (math.sqrt(5),), {}),
        (nn.init.kaiming_uniform_, (), {"a": 0.1, "mode": "fan_out", "nonlinearity": "relu"}),
        (nn.init.kaiming_normal_, (0.0, "fan_out"), {"nonlinearity": "relu", "generator": None}),
        (nn.init.uniform_, (-0.5,), {"b": 0.25}),
        (nn.init.normal_, (), {"std": 0.02}),
        (nn.init.trunc_normal_, (0.0, 0.02, -0.04, 0.04, None), {}),
        (nn.init.xavier_uniform_, (), {"gain": 2.0}),
        (nn.init.constant_, (0.3,), {}),
    ]


@pytest.mark.parametrize("i", range(len(_call_forms())))
def test_recorded_call_binding_matches_signature_bind(i):
    """The hand binder gives Signature.bind + apply_defaults' arguments for every call form."""
    import inspect

    from fastinit.calls import bind as _bind

    fn, args, kwargs = _call_forms()[i]
    w = torch.empty(8, 4)
    bound = inspect.signature(fn).bind(w, *args, **kwargs)
    bound.apply_defaults()
    assert _bind(fn, (w, *args), kwargs) == dict(bound.arguments)


@pytest.mark.parametrize("args, kwargs", [((), {"bogus": 1}), ((0.0,), {"a": 1.0}), ((1, 2, 3, 4, 5), {}),
                                          ((), {"nonlinearity": "relu", "tensor": None}), ((), {"fn": 1}),
                                          ((), {"original": 1}), ((), {"torch_name": "x"})])
def test_bad_init_calls_raise_torchs_type_error(args, kwargs):
    """A bad call inside recorded init code raises the TypeError the eager call raises, with its message."""
    with pytest.raises(TypeError) as eager:
        nn.init.kaiming_uniform_(torch.empty(4, 4), *args, **kwargs)

    def bad(m):
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, *args, **kwargs)

    with pytest.raises(TypeError) as recorded:
        fastinit.apply(nn.Linear(4, 4), bad)
    assert str(recorded.value) == str(eager.value)


def test_resolved_specs_are_cached_by_value_and_sign():
    """Resolution is memoized per (spec, shape), and -0.0 is not taken for 0.0 (other bits)."""
    pos = S.resolve_spec(S.Constant(0.0), (3,))
    neg = S.resolve_spec(S.Constant(-0.0), (3,))
    assert math.copysign(1.0, pos.params[0]) == 1.0 and math.copysign(1.0, neg.params[0]) == -1.0
    a, b = torch.empty(5), torch.empty(5)
    fastinit.init.constant_(a, -0.0)
    fastinit.init.constant_(b, 0.0)
    assert torch.signbit(a).all() and not torch.signbit(b).any()
    spec = S.KaimingUniform(a=math.sqrt(5))
    assert S.resolve_spec(spec, (64, 32)) is S.resolve_spec(S.KaimingUniform(a=math.sqrt(5)), (64, 32))
    assert S.resolve_spec(spec, (64, 32)) == spec.resolve((64, 32)) != spec.resolve((64, 33))
    with pytest.raises(ValueError, match="Mode fan_sideways not supported"):  # errors are raised, never cached
        S.resolve_spec(S.KaimingUniform(mode="fan_sideways"), (4, 4))
    with pytest.raises(ValueError, match="Mode fan_sideways not supported"):
        S.resolve_spec(S.KaimingUniform(mode="fan_sideways"), (4, 4))


def test_tensor_given_by_keyword_is_recorded():
    """``init.fn(tensor=w, ...)`` is a valid torch call: it is recorded like the positional form."""
    def kw(m):
        if isinstance(m, nn.Linear):
            nn.init.uniform_(tensor=m.weight, a=-0.5, b=0.25)

    model = nn.Linear(8, 4)
    tracked = tracked_tensors(model)
    pending = {p.name: p for p in resolve_policy(model, kw, tracked, flush=lambda p: None)}
    assert pending["weight"].spec == S.Uniform(-0.5, 0.25)
    fastinit.apply(model, kw, seed=3)
    assert model.weight.min() >= -0.5 and model.weight.max() < 0.25
