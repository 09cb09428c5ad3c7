"""One walk of the module tree per run (fastinit.walk): the same names and tensors as torch's own walks."""

import torch
from torch import nn

import fastinit
from fastinit import walk


def _model():
    shared = nn.Linear(3, 3)
    m = nn.Sequential(nn.Embedding(5, 3), shared, nn.ReLU(), shared, nn.LayerNorm(3), nn.Linear(3, 5, bias=False))
    m[5].weight = m[0].weight  # a tied parameter
    m[4].register_buffer("scale", torch.ones(3))
    m[1].register_buffer("none", None)
    m.extra = nn.Module()
    m.extra.register_buffer("scale", m[4].scale)  # one buffer under two names
    return m


def test_named_tensors_are_torchs_with_and_without_the_shared_walk():
    m = _model()
    want = (list(m.named_parameters()), list(m.named_buffers()))
    got = walk.named_tensors(m)
    with walk.one_walk(m):
        shared = walk.named_tensors(m)
    for g in (got, shared):
        assert [n for n, _ in g[0]] == [n for n, _ in want[0]] and [n for n, _ in g[1]] == [n for n, _ in want[1]]
        assert all(a is b for (_, a), (_, b) in zip(g[0] + g[1], want[0] + want[1]))


def test_a_class_walking_its_own_members_is_asked():
    class Renamed(nn.Sequential):
        def named_parameters(self, *args, **kwargs):
            for n, p in super().named_parameters(*args, **kwargs):
                yield "x." + n, p

    m = Renamed(nn.Linear(2, 2))
    assert [n for n, _ in walk.named_tensors(m)[0]] == ["x.0.weight", "x.0.bias"]


def test_a_run_walks_the_tree_once_before_code_runs():
    calls = []

    class Counted(nn.Sequential):
        def named_modules(self, *args, **kwargs):
            calls.append(args or kwargs)
            return super().named_modules(*args, **kwargs)

    class OwnInit(nn.Module):  # recorded (not a known module): the recorder, its slots and ties all need the tree
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(4))

        def reset_parameters(self):
            nn.init.normal_(self.w)

    model = Counted(OwnInit(), nn.Linear(4, 4), OwnInit())
    fastinit.apply(model, seed=0)
    assert len(calls) == 1
    calls.clear()
    fastinit.apply(model, seed=0)  # and again on the next run (nothing is kept between runs)
    assert len(calls) == 1


def test_the_tree_is_walked_again_once_init_code_may_change_it():
    m = nn.Sequential(nn.Linear(2, 2))
    with walk.one_walk(m):
        first = walk.modules(m)
        assert walk.modules(m) is first
        walk.code_runs()
        m.add_module("added", nn.Linear(2, 2))
        assert [n for n, _ in walk.modules(m)] == ["", "0", "added"]
    assert [n for n, _ in walk.modules(m)] == ["", "0", "added"]
