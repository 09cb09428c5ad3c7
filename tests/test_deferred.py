"""empty_init + materialize: bitwise eager construction + fastinit.apply, buffers kept, leftovers reported."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import fastinit
from fastinit.deferred import last_materialize

SEED = 99


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(300, 256, padding_idx=1)
        self.lin = nn.Linear(256, 512)
        self.conv = nn.Conv2d(4, 8, 3)
        self.norm = nn.LayerNorm(512)
        self.bn = nn.BatchNorm1d(512)
        self.scale = nn.Parameter(torch.full((512,), 0.5))  # set by the constructor, no reset_parameters
        self.register_buffer("table", torch.linspace(0, 1, 17))  # a rotary-style constructor buffer
        self.head = nn.Linear(256, 300, bias=False)
        self.head.weight = self.emb.weight  # tied


def _eager(policy="default", dtype=None):
    m = Net()
    if dtype is not None:
        m = m.to(dtype)
    fastinit.apply(m, policy, seed=SEED)
    return m


@pytest.mark.parametrize("policy", ["default", "kaiming_normal"])
def test_bitwise_like_eager_then_apply(policy):
    want = _eager(policy).state_dict()
    with fastinit.empty_init() as st:
        m = Net()
    assert m.lin.weight.is_meta and m.emb.weight.is_meta and not m.table.is_meta
    assert st.meta_params >= 3 and st.meta_buffers == []
    fastinit.materialize(m, "cpu", policy, seed=SEED)
    got = m.state_dict()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want), [k for k in want if not torch.equal(got[k], want[k])]
    assert m.head.weight is m.emb.weight  # tie kept, with the embedding's init (its creator's, as eagerly)
    assert m.emb.weight[1].eq(0).all()  # the padding row eager construction leaves zero


def test_all_meta_and_dtype():
    want = _eager(dtype=torch.bfloat16)
    with fastinit.empty_init(keep_numel=0):
        m = Net()
    m.scale = None  # no value exists for it anywhere once it is meta
    want.scale = None
    fastinit.materialize(m, "cpu", seed=SEED, dtype=torch.bfloat16)
    assert m.lin.weight.dtype == torch.bfloat16 and m.table.dtype == torch.float32
    w = want.state_dict()
    for k, v in m.state_dict().items():
        assert torch.equal(v, w[k].to(v.dtype)), k


def test_no_double_allocation_of_ties():
    with fastinit.empty_init():
        m = Net()
    fastinit.materialize(m, "cpu", seed=SEED)
    rep = last_materialize()
    assert rep.allocated_params.count("emb.weight") == 1 and "head.weight" not in rep.allocated_params


def test_meta_device_model_reports_leftovers():
    with torch.device("meta"):
        m = Net()
    with pytest.raises(RuntimeError, match="scale"):
        fastinit.materialize(m, "cpu", seed=SEED)  # strict: a meta parameter without a spec is an error
    with torch.device("meta"):
        m = Net()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fastinit.materialize(m, "cpu", seed=SEED, strict=False)
    text = " ".join(str(x.message) for x in w)
    assert "scale" in text and "table" in text
    rep = last_materialize()
    assert rep.meta_leftovers == ["table"] and rep.uninitialized_params == ["scale"]
    # BatchNorm running stats were meta too, but the default policy (reset_running_stats) restores them
    assert {"bn.running_mean", "bn.running_var"} <= set(rep.restored_buffers)
    assert torch.equal(m.bn.running_var, torch.ones(512)) and torch.isnan(m.table).all()


def test_empty_init_reports_meta_buffers():
    class B(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(512, 512)
            self.register_buffer("mask", torch.zeros_like(self.lin.weight))  # made from a meta parameter

    with pytest.warns(RuntimeWarning, match="B.mask"):
        with fastinit.empty_init() as st:
            B()
    assert st.meta_buffers == ["B.mask"]


def test_accelerate_style_models_and_rules():
    """A model whose parameters were moved to meta by someone else (accelerate's init_empty_weights does this)."""
    m = Net()
    want = _eager("xavier_uniform").state_dict()
    for mod in m.modules():
        for n, p in list(mod._parameters.items()):
            if p is not None and p.dim() >= 2:
                mod._parameters[n] = nn.Parameter(p.detach().to("meta"))
    m.head.weight = m.emb.weight
    fastinit.materialize(m, "cpu", "xavier_uniform", seed=SEED)
    assert all(torch.equal(v, want[k]) for k, v in m.state_dict().items())


def test_apply_refuses_meta():
    with fastinit.empty_init():
        m = Net()
    with pytest.raises(RuntimeError, match="materialize"):
        fastinit.apply(m, seed=1)


def test_empty_init_restores_what_it_patches():
    before = (nn.Module.register_parameter, nn.Module.register_buffer, torch.Tensor.normal_)
    with fastinit.empty_init():
        emb = nn.Embedding(300, 400)  # its normal_ runs on a meta parameter: skipped
        assert emb.weight.is_meta
        x = torch.zeros(5)
        x.normal_()  # real tensors still draw
        assert (x != 0).any()
    assert (nn.Module.register_parameter, nn.Module.register_buffer, torch.Tensor.normal_) == before


def test_refused_materialize_leaves_the_rngs_alone():
    class NoInit(nn.Module):  # a parameter nothing gives a value: strict materialize refuses
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(300, 300))

    for record in (True, False):
        for use_generator in (True, False):
            with fastinit.empty_init(record=record):
                m = NoInit()
            gen = torch.Generator().manual_seed(3)
            rng, gstate = torch.get_rng_state(), gen.get_state()
            with pytest.raises(RuntimeError, match="gives no value"):
                fastinit.materialize(m, "cpu", generator=gen if use_generator else None)
            assert torch.equal(torch.get_rng_state(), rng) and torch.equal(gen.get_state(), gstate)
