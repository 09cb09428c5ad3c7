"""The default policy's fast path (fastinit.known_inits) records exactly what running torch's code records."""

import math

import pytest
import torch
from torch import nn

import fastinit
from fastinit import known_inits
from fastinit.policy import default_init, record_callable, resolve_policy, tracked_tensors


def _specs(model, fast: bool, monkeypatch=None):
    tracked = tracked_tensors(model)
    if fast:
        pending = resolve_policy(model, "default", tracked, lambda p: None)
    else:
        pending = record_callable(model, default_init, tracked, lambda p: None)
    return [(p.name, p.spec, len(p.post_ops)) for p in pending]


ZOO = [
    lambda: nn.Linear(5, 3), lambda: nn.Linear(5, 3, bias=False), lambda: nn.Linear(1, 7),
    lambda: nn.Conv1d(4, 6, 3), lambda: nn.Conv2d(4, 6, (3, 2), groups=2), lambda: nn.Conv3d(2, 4, 2, bias=False),
    lambda: nn.ConvTranspose2d(4, 6, 3, groups=2), lambda: nn.ConvTranspose1d(3, 5, 2),
    lambda: nn.LayerNorm(8), lambda: nn.LayerNorm(8, bias=False), lambda: nn.LayerNorm(8, elementwise_affine=False),
    lambda: nn.RMSNorm(8), lambda: nn.RMSNorm(8, elementwise_affine=False), lambda: nn.GroupNorm(2, 8),
    lambda: nn.GroupNorm(2, 8, affine=False), lambda: nn.Embedding(10, 4), lambda: nn.Embedding(10, 4, padding_idx=1),
    lambda: nn.MultiheadAttention(8, 2),
]


@pytest.fixture(autouse=True)
def fresh_verification(monkeypatch):
    # every test starts with no layout verified, so the one-time check runs inside the test
    monkeypatch.setattr(known_inits, "_VERIFIED", {})
    monkeypatch.setattr(known_inits, "_BY_CLASS", {})


@pytest.mark.parametrize("make", ZOO)
def test_fast_path_records_what_running_the_code_records(make):
    torch.manual_seed(0)
    model = nn.Sequential(make(), make(), make())  # the first is checked the slow way, the others take the fast path
    assert _specs(model, fast=True) == _specs(model, fast=False)


def test_fast_path_is_taken_after_one_verified_module(monkeypatch):
    model = nn.Sequential(*[nn.Linear(3, 2) for _ in range(4)])
    ran = []
    orig = nn.Linear.reset_parameters
    monkeypatch.setattr(nn.Linear, "reset_parameters", lambda self: (ran.append(self), orig(self))[1])
    known_inits._KNOWN[nn.Linear.reset_parameters] = known_inits._linear  # the patched one is "torch's" here
    try:
        resolve_policy(model, "default", tracked_tensors(model), lambda p: None)
    finally:
        del known_inits._KNOWN[nn.Linear.reset_parameters]
    assert ran == [model[0]]  # only the first ran its code


def test_a_torch_whose_code_differs_turns_the_fast_path_off(monkeypatch):
    # as if another torch version initialized Linear biases differently: the one-time check sees it
    monkeypatch.setitem(known_inits._KNOWN, nn.Linear.reset_parameters,
                        lambda m: [("weight", "kaiming_uniform_", (math.sqrt(5),)), ("bias", "uniform_", (-9.0, 9.0))])
    model = nn.Sequential(*[nn.Linear(3, 2) for _ in range(3)])
    assert _specs(model, fast=True) == _specs(model, fast=False)
    assert False in known_inits._VERIFIED.values()


def test_overridden_reset_parameters_runs_its_own_code():
    class Zeroed(nn.Linear):
        def reset_parameters(self):
            nn.init.zeros_(self.weight)
            if self.bias is not None:
                nn.init.ones_(self.bias)

    lin = nn.Linear(3, 2)
    lin.reset_parameters = lambda: nn.init.constant_(lin.weight, 2.0)
    model = nn.Sequential(nn.Linear(3, 2), Zeroed(3, 2), Zeroed(3, 2), lin)
    fastinit.apply(model, seed=0)
    assert (model[1].weight == 0).all() and (model[2].bias == 1).all()
    assert (model[3].weight == 2).all()
    assert _specs(model, fast=True) == _specs(model, fast=False)


def test_odd_tensors_take_the_slow_path():
    channels_last = nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    empty = nn.Linear(0, 3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), channels_last, nn.Linear(4, 3), empty)
    assert known_inits.known_calls(channels_last) is None
    assert known_inits.known_calls(empty) is None
    assert _specs(model, fast=True) == _specs(model, fast=False)


def test_fast_and_slow_values_are_bitwise_equal(monkeypatch):
    def model():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 8), nn.Conv1d(8, 4, 3), nn.Conv1d(8, 4, 3),
                             nn.Embedding(5, 8), nn.Embedding(5, 8), nn.RMSNorm(8), nn.RMSNorm(8))

    fast = fastinit.apply(model(), seed=3)
    monkeypatch.setattr(known_inits, "known_calls", lambda *a: None)
    slow = fastinit.apply(model(), seed=3)
    for (n, a), (_, b) in zip(fast.state_dict().items(), slow.state_dict().items()):
        assert torch.equal(a, b), n
