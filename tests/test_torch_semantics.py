"""fastinit.init follows torch.nn.init exactly: fans, gains, bounds, deterministic fills, errors and warnings."""

import math
import warnings
from unittest import mock

import numpy as np
import pytest
import torch

import fastinit
from fastinit import init
from fastinit import specs as S

SHAPES = [(3, 5), (5, 3), (1, 1), (64, 1), (16, 8, 3), (8, 4, 3, 3), (6, 2, 3, 5, 1), (0, 5), (7, 0)]
NONLINEARITIES = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                  ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)]


def torch_call(fn, shape, **kw):
    """The arguments torch.nn.init hands to Tensor.uniform_/normal_ (which are not run)."""
    calls = []

    def recorder(name):
        def rec(self, a=0.0, b=1.0, generator=None):
            calls.append((name, [float(a), float(b)]))
            return self
        return rec

    with mock.patch.object(torch.Tensor, "uniform_", recorder("uniform_")), \
            mock.patch.object(torch.Tensor, "normal_", recorder("normal_")), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn(torch.empty(shape), **kw)
    return calls


def f32(x):
    return float(np.float32(x))


def check_same(spec, shape, calls):
    res = spec.resolve(shape)
    (name, (p, q)), = calls
    if name == "uniform_":
        assert res.kind == S.KIND_UNIFORM
        # exact doubles (stream contract v2): build_tables rounds them per dtype
        assert res.params == ((p + q) / 2, (q - p) / 2, 0.0, 0.0, p, q)
    else:
        assert res.kind == S.KIND_NORMAL
        assert res.params[2:4] == (p, q) and res.params[:2] == (0.0, 1.0)


@pytest.mark.parametrize("shape", [s for s in SHAPES if 0 not in s])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nl,param", NONLINEARITIES)
def test_kaiming_bounds_equal_torch(shape, mode, nl, param):
    kw = {"a": param or 0, "mode": mode, "nonlinearity": nl}
    check_same(S.KaimingUniform(**kw), shape, torch_call(torch.nn.init.kaiming_uniform_, shape, **kw))
    check_same(S.KaimingNormal(**kw), shape, torch_call(torch.nn.init.kaiming_normal_, shape, **kw))


@pytest.mark.parametrize("shape", [s for s in SHAPES if 0 not in s] + [(0, 5), (7, 0)])
@pytest.mark.parametrize("gain", [1.0, 0.5, math.sqrt(2)])
def test_xavier_bounds_equal_torch(shape, gain):
    check_same(S.XavierUniform(gain), shape, torch_call(torch.nn.init.xavier_uniform_, shape, gain=gain))
    check_same(S.XavierNormal(gain), shape, torch_call(torch.nn.init.xavier_normal_, shape, gain=gain))


@pytest.mark.parametrize("a,b", [(0.0, 1.0), (-3.0, 7.5), (1e-3, 1e-3), (-0.1, 0.1)])
def test_uniform_and_normal_params_equal_torch(a, b):
    check_same(S.Uniform(a, b), (4,), torch_call(torch.nn.init.uniform_, (4,), a=a, b=b))
    check_same(S.Normal(a, abs(b)), (4,), torch_call(torch.nn.init.normal_, (4,), mean=a, std=abs(b)))


@pytest.mark.parametrize("nl,param", NONLINEARITIES + [("leaky_relu", 0), ("leaky_relu", 3)])
def test_calculate_gain_is_torchs(nl, param):
    assert init.calculate_gain(nl, param) == torch.nn.init.calculate_gain(nl, param)


def both_raise(torch_fn, ours_fn):
    with pytest.raises(Exception) as theirs:
        torch_fn()
    with pytest.raises(Exception) as mine:
        ours_fn()
    assert type(mine.value) is type(theirs.value)
    return str(theirs.value), str(mine.value)


ERRORS = [
    ("kaiming_uniform_", (3, 4), {"mode": "fan_middle"}),
    ("kaiming_normal_", (3, 4), {"nonlinearity": "swish"}),
    ("kaiming_uniform_", (3, 4), {"nonlinearity": "leaky_relu", "a": "x"}),
    ("kaiming_uniform_", (3,), {}),
    ("xavier_uniform_", (7,), {}),
    ("xavier_normal_", (0, 0), {}),
    ("eye_", (2, 3, 4), {}),
    ("dirac_", (3, 3), {}),
    ("dirac_", (6, 2, 3), {"groups": 4}),
    ("orthogonal_", (5,), {}),
    ("sparse_", (2, 3, 4), {"sparsity": 0.1}),
    ("uniform_", (3,), {"a": 1.0, "b": 0.0}),
    ("normal_", (3,), {"std": -1.0}),
    ("normal_", (3,), {"std": float("nan")}),
    ("uniform_", (3,), {"a": float("nan")}),
    ("uniform_", (3,), {"b": float("inf")}),
    ("trunc_normal_", (3,), {"std": 0.0}),
]


@pytest.mark.parametrize("name,shape,kw", ERRORS)
def test_errors_equal_torch(name, shape, kw):
    theirs, mine = both_raise(lambda: getattr(torch.nn.init, name)(torch.empty(shape), **kw),
                              lambda: getattr(init, name)(torch.empty(shape), **kw, **({} if name in (
                                  "eye_", "dirac_") else {"seed": 1})))
    assert mine == theirs


@pytest.mark.parametrize("name", ["uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "xavier_normal_"])
def test_random_init_of_integer_tensor_raises_like_torch(name):
    t = torch.zeros(4, 4, dtype=torch.int64)
    both_raise(lambda: getattr(torch.nn.init, name)(t.clone()), lambda: getattr(init, name)(t, seed=1))
    assert (t == 0).all()


@pytest.mark.parametrize("name", ["kaiming_uniform_", "kaiming_normal_"])
@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0,)])
def test_zero_element_warning_equals_torch(name, shape):
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op") as rec:
        out = getattr(init, name)(torch.empty(shape), seed=1)
    assert out.shape == shape
    assert rec[0].filename == __file__  # points at the caller, as torch's does


def test_trunc_normal_warning_equals_torch():
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        torch.nn.init.trunc_normal_(torch.empty(10), mean=5.0, std=1.0, a=-1.0, b=1.0)
    with pytest.warns(UserWarning, match="mean is more than 2 std from") as rec:
        init.trunc_normal_(torch.empty(10), mean=5.0, std=1.0, a=-1.0, b=1.0, seed=1)
    assert rec[0].filename == __file__


def _warnings_of(fn) -> list[tuple]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fn()
    return [(w.category, str(w.message), w.filename, w.lineno) for w in rec]


def _zero_and_far_init(m):
    if isinstance(m, torch.nn.Linear):
        torch.nn.init.kaiming_normal_(m.weight, mode="fan_out")  # zero-element weight: warns
        torch.nn.init.trunc_normal_(m.bias, mean=5.0, std=1.0, a=-1.0, b=1.0)  # mean far out: warns


@pytest.mark.parametrize("policy", ["default", "callable"])
def test_recorded_init_warns_where_torch_warns(policy):
    """Warnings from recorded init code: torch's category and text, pointing at the same file and line.

    Except where torch points into its own init.py (trunc_normal_'s warning has one frame too few): there
    fastinit points at the caller, as fastinit.init.trunc_normal_ does.
    """
    fn = (lambda m: m.reset_parameters() if isinstance(m, torch.nn.Linear) else None) if policy == "default" \
        else _zero_and_far_init
    model = torch.nn.Sequential(torch.nn.Linear(0, 3))
    eager = _warnings_of(lambda: model.apply(fn))
    fused = _warnings_of(lambda: fastinit.apply(model, "default" if policy == "default" else fn))
    assert len(eager) == (1 if policy == "default" else 2)
    torch_init_py = torch.nn.init.__file__
    for (cat, msg, file, line), got in zip(eager, fused, strict=True):
        if file == torch_init_py:
            assert got[:3] == (cat, msg, __file__), got
        else:
            assert got == (cat, msg, file, line)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32])
@pytest.mark.parametrize("val", [0.0, 1.0, 0.1, 1 / 3, -2.5e-5, 7])
def test_constant_equals_torch_bitwise(dtype, val):
    a, b = torch.empty(37, dtype=dtype), torch.empty(37, dtype=dtype)
    torch.nn.init.constant_(a, val)
    init.constant_(b, val)
    assert torch.equal(a, b)
    init.zeros_(b)
    assert (b == 0).all()
    init.ones_(b)
    assert (b == 1).all()


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 7), (0, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_eye_equals_torch(shape, dtype):
    a, b = torch.full(shape, 9, dtype=dtype), torch.full(shape, 9, dtype=dtype)
    torch.nn.init.eye_(a)
    init.eye_(b)
    assert torch.equal(a, b)


@pytest.mark.parametrize("shape,groups", [((4, 4, 3), 1), ((6, 2, 5), 3), ((8, 3, 3, 3), 2), ((4, 6, 2, 4), 1),
                                          ((6, 4, 3, 3, 3), 3), ((2, 5, 1, 1, 1), 1), ((5, 2, 4), 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_dirac_equals_torch(shape, groups, dtype):
    a, b = torch.full(shape, 9, dtype=dtype), torch.full(shape, 9, dtype=dtype)
    torch.nn.init.dirac_(a, groups)
    init.dirac_(b, groups)
    assert torch.equal(a, b)


def test_orthogonal_is_orthogonal_and_deterministic():
    a, b = torch.empty(30, 50), torch.empty(30, 50)
    init.orthogonal_(a, gain=2.0, seed=3, key=9)
    init.orthogonal_(b, gain=2.0, seed=3, key=9)
    assert torch.equal(a, b)
    assert torch.allclose(a @ a.T, 4.0 * torch.eye(30), atol=1e-4)


def test_sparse_has_the_right_zeros_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    t = torch.empty(20, 30)
    init.sparse_(t, sparsity=0.25, std=0.5, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert ((t == 0).sum(0) >= math.ceil(0.25 * 20)).all()


def test_meta_tensors_are_left_alone_like_torch():
    t = torch.empty(3, 4, device="meta")
    assert init.kaiming_uniform_(t, seed=1) is t
    assert torch.nn.init.kaiming_uniform_(t) is t


def test_signatures_match_torch():
    import inspect

    for name in init.__all__:
        ours = inspect.signature(getattr(init, name))
        theirs = inspect.signature(getattr(torch.nn.init, name))
        positional = [p for p in ours.parameters.values() if p.kind != p.KEYWORD_ONLY]
        assert [p.name for p in positional] == list(theirs.parameters), name
        for p in positional:
            assert p.default == theirs.parameters[p.name].default, (name, p.name)
