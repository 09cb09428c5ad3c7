"""Tied weights end as eager construction leaves them: the creator's init, declared ties re-made after meta builds."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch
from torch import nn

import fastinit
from fastinit.keys import key_for

SEED = 11


class TiedAfter(nn.Module):
    """The usual pattern: the head takes the embedding's Parameter (the embedding created it)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(200, 64, padding_idx=0)
        self.body = nn.Linear(64, 64)
        self.head = nn.Linear(64, 200, bias=False)
        self.head.weight = self.emb.weight


class TiedReverse(nn.Module):
    """The embedding takes the head's Parameter: the head created it, module order says otherwise."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(200, 64)
        self.head = nn.Linear(64, 200, bias=False)
        self.emb.weight = self.head.weight


class Declared(TiedReverse):
    _tied_weights_keys = {"emb.weight": "head.weight"}  # {target: source}, as transformers declares them


def _embedding_init(name="emb.weight", pad=0):
    want = torch.empty(200, 64)
    fastinit.init.normal_(want, seed=SEED, key=key_for(name))
    if pad is not None:
        want[pad] = 0
    return want


def _head_init(name):
    want = torch.empty(200, 64)
    fastinit.init.kaiming_uniform_(want, a=5 ** 0.5, seed=SEED, key=key_for(name))
    return want


def test_construction_record_knows_the_creator():
    for cls, want in ((TiedAfter, _embedding_init()), (TiedReverse, _head_init("emb.weight"))):
        eager = cls()
        assert eager.emb.weight is eager.head.weight
        with fastinit.empty_init(keep_numel=0):
            m = cls()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # recorded construction knows: no guess, no warning
            fastinit.materialize(m, "cpu", seed=SEED)
        assert m.emb.weight is m.head.weight
        assert torch.equal(m.emb.weight.detach(), want), cls.__name__
        if cls is TiedAfter:  # the padding row eager construction leaves zero
            assert torch.equal(eager.emb.weight[0], m.emb.weight[0])


def test_apply_on_a_built_model_keeps_the_first_owner_and_warns():
    m = TiedAfter()
    with pytest.warns(RuntimeWarning, match="emb.weight is tied to head.weight") as rec:
        fastinit.apply(m, seed=SEED)
    assert rec[0].filename == __file__  # points at the caller
    assert torch.equal(m.emb.weight.detach(), _embedding_init())  # the head's Kaiming used to win
    assert torch.equal(m.body.weight.detach(), _head_init_body())


def _head_init_body():
    want = torch.empty(64, 64)
    fastinit.init.kaiming_uniform_(want, a=5 ** 0.5, seed=SEED, key=key_for("body.weight"))
    return want


def test_declared_ties_decide_without_warning():
    m = Declared()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastinit.apply(m, seed=SEED)
    assert torch.equal(m.head.weight.detach(), _head_init("emb.weight"))  # tracked under its first name


def test_agreeing_owners_do_not_warn():
    class Same(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(32, 32)
            self.b = nn.Linear(32, 32)
            self.b.weight = self.a.weight

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastinit.apply(Same(), seed=SEED)


@contextlib.contextmanager
def init_empty_weights():
    """accelerate's init_empty_weights, replicated: every registered parameter becomes a new meta Parameter."""
    old = nn.Module.register_parameter

    def register_parameter(module, name, param):
        old(module, name, param)
        if param is not None:
            p = module._parameters[name]
            module._parameters[name] = type(p)(p.to("meta"), requires_grad=p.requires_grad)

    nn.Module.register_parameter = register_parameter
    try:
        yield
    finally:
        nn.Module.register_parameter = old


def test_materialize_reties_declared_ties_after_accelerate_style_builds():
    with init_empty_weights():
        m = Declared()
    assert m.emb.weight is not m.head.weight  # the meta build broke the tie
    fastinit.materialize(m, "cpu", seed=SEED)
    assert m.emb.weight is m.head.weight
    assert [n for n, _ in m.named_parameters()] == ["emb.weight"]  # one tensor, under its first name
    assert torch.equal(m.head.weight.detach(), _head_init("emb.weight"))  # the declared source's init
