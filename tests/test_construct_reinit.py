"""empty_init + materialize("default") where the constructor record holds no faithful value.

A record cannot give a tensor its eager value when that value was lost on the meta device
(``self.A_log = nn.Parameter(torch.log(a))`` in ``reset_parameters``) or drawn from torch's RNG
(q/k/v temporaries read by ``torch.cat`` before they are copied into a fused parameter, which
must then be written eagerly; ``torch.randn`` in ``reset_parameters``). materialize re-records
those tensors' owners' ``reset_parameters`` on the apply path: for models whose constructors only
run ``reset_parameters`` the result is bitwise ``fastinit.apply(eager_model, seed=...)``, whatever
``torch.manual_seed`` says. Where no such init exists, torch's draws are replayed and a
RuntimeWarning names the tensors; values lost with no init to give them stay an error.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from test_recording import FusedQKV  # q/k/v temporaries read by torch.cat, copied into wqkv
from torch import nn

import fastinit

SEED = 11


class RandnScale(nn.Module):
    """A parameter made anew from torch.randn inside reset_parameters (timm's pos_embed / layer scale style)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.empty(6, 4))
        self.proj = nn.Linear(4, 4)
        self.reset_parameters()

    def reset_parameters(self):
        self.w = nn.Parameter(torch.randn(6, 4) * 0.5)


class CtorOnlyQKV(nn.Module):
    """The same fused qkv, built in the constructor only: no reset_parameters to record instead."""

    def __init__(self, d=8):
        super().__init__()
        self.wqkv = nn.Parameter(torch.empty(3 * d, d))
        parts = [torch.empty(d, d) for _ in range(3)]
        for p in parts:
            nn.init.xavier_uniform_(p)
        with torch.no_grad():
            self.wqkv.copy_(torch.cat(parts))


class Mirrored(nn.Module):
    """A parent constructor that writes a parameter from a drawn value of its child's."""

    def __init__(self):
        super().__init__()
        self.qkv = FusedQKV(8)
        self.mirror = nn.Parameter(torch.empty(24, 8))
        with torch.no_grad():
            self.mirror.copy_(self.qkv.wqkv * 2.0)


class LostOnly(nn.Module):
    """A computed parameter registered in the constructor itself: lost on meta, and no init to give it again."""

    def __init__(self):
        super().__init__()
        self.A_log = nn.Parameter(torch.log(torch.arange(1, 5, dtype=torch.float32).repeat(6, 1)))


def _materialize_under(torch_seed, make, keep_numel):
    torch.manual_seed(torch_seed)
    with fastinit.empty_init(keep_numel=keep_numel):
        m = make()
    rng = torch.get_rng_state()
    fastinit.materialize(m, "cpu", seed=SEED)
    assert torch.equal(torch.get_rng_state(), rng), "materialize consumed torch's global RNG"
    assert fastinit.last_report() and all(r.backend != "torch" for r in fastinit.last_report())
    return {n: t.detach().clone() for n, t in m.named_parameters()}


@pytest.mark.parametrize("keep_numel", [0, 65536])  # wqkv on meta / kept real with torch's draws copied in
@pytest.mark.parametrize("make", [lambda: nn.Sequential(FusedQKV()), RandnScale], ids=["fused_qkv", "randn"])
def test_materialize_is_bitwise_apply_default_and_ignores_torch_seed(make, keep_numel):
    torch.manual_seed(0)
    eager = make()
    fastinit.apply(eager, seed=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # nothing here needs torch's RNG: no warning either
        one = _materialize_under(1, make, keep_numel)
        two = _materialize_under(2, make, keep_numel)
    for name, t in eager.named_parameters():
        assert torch.equal(one[name], t.detach()), name
        assert torch.equal(two[name], t.detach()), name


def test_constructor_only_drawn_values_warn_and_keep_eager_values():
    torch.manual_seed(3)
    with fastinit.empty_init(keep_numel=0):
        m = CtorOnlyQKV()
    with pytest.warns(RuntimeWarning, match=r"drawn from torch's RNG.*follow torch\.manual_seed.*: wqkv$"):
        fastinit.materialize(m, "cpu", seed=SEED)
    torch.manual_seed(3)
    eager = CtorOnlyQKV()
    assert torch.equal(m.wqkv.detach(), eager.wqkv.detach())  # eager's draws, in eager's order


def test_a_value_computed_from_a_drawn_parameter_is_warned_not_silently_stale():
    torch.manual_seed(4)
    with fastinit.empty_init():  # small: kept real, so the parent's constructor computes from torch's draws
        m = Mirrored()
    with pytest.warns(RuntimeWarning, match=r"drawn from torch's RNG.*: mirror$"):
        fastinit.materialize(m, "cpu", seed=SEED)
    ref = nn.ModuleDict({"qkv": FusedQKV(8)})
    fastinit.apply(ref, seed=SEED)  # the child is re-initialized from its reset_parameters, as "default" does
    assert torch.equal(m.qkv.wqkv.detach(), ref["qkv"].wqkv.detach())
    torch.manual_seed(4)
    assert torch.equal(m.mirror.detach(), Mirrored().mirror.detach())  # eager's (torch-seeded) value, said loudly


def test_lost_value_with_no_init_to_give_it_still_raises():
    with fastinit.empty_init(keep_numel=0):
        m = LostOnly()
    with pytest.raises(RuntimeError, match=r"gives no value to these parameters.*: A_log; pass strict=False"):
        fastinit.materialize(m, "cpu", seed=SEED)


class DtBias(nn.Module):
    """Mamba's dt bias written by the constructor itself over a Linear's bias: not what Linear.reset_parameters does."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 8)
        with torch.no_grad():
            self.proj.bias.copy_(torch.exp(torch.rand(8) * 2.0 - 4.0))


def test_a_draw_written_outside_the_owners_init_is_not_replaced_by_it():
    torch.manual_seed(5)
    with fastinit.empty_init(keep_numel=0):
        m = DtBias()
    with pytest.warns(RuntimeWarning, match=r"drawn from torch's RNG.*: proj\.bias$"):
        fastinit.materialize(m, "cpu", seed=SEED)
    bias = m.proj.bias.detach()  # the constructor's draws (eager's distribution), not Linear's uniform(-1/2, 1/2)
    assert bool(((bias > math.exp(-4.0)) & (bias < math.exp(-2.0))).all()), bias
    ref = nn.ModuleDict({"proj": nn.Linear(4, 8)})
    fastinit.apply(ref, seed=SEED)
    assert torch.equal(m.proj.weight.detach(), ref["proj"].weight.detach())


def test_transformers_mamba_dt_bias_follows_the_hf_init_on_fastinits_stream():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.MambaConfig(num_hidden_layers=1, hidden_size=16, state_size=4, vocab_size=64, pad_token_id=0)
    eager = transformers.MambaModel(cfg)
    fastinit.apply(eager, "hf", seed=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        one = _materialize_under(1, lambda: transformers.MambaModel(cfg), 0)
        two = _materialize_under(2, lambda: transformers.MambaModel(cfg), 0)
    for name, t in eager.named_parameters():  # dt_proj.bias came from torch.rand inside _init_weights
        assert torch.equal(one[name], t.detach()), name
        assert torch.equal(two[name], t.detach()), name


class LostFromDeferred(nn.Module):
    """reset_parameters makes a large parameter from a small one whose own random init it has just deferred."""

    def __init__(self):
        super().__init__()
        self.base = nn.Parameter(torch.empty(4))  # small: stays real under empty_init, its normal_ deferred
        self.big = nn.Parameter(torch.empty(300, 300))  # above keep_numel: on meta
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.base)
        self.big = nn.Parameter(self.base.detach().repeat(300, 75))


def test_a_lost_value_computed_from_a_deferred_init_is_refused_not_recomputed_from_garbage():
    with fastinit.empty_init():
        m = LostFromDeferred()
    with pytest.raises(RuntimeError, match=r"gives no value to these parameters.*: big; pass strict=False"):
        fastinit.materialize(m, "cpu", seed=SEED)
