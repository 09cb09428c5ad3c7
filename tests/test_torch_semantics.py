"""fastinit.init follows torch.nn.init exactly: fans, gains, bounds, deterministic fills, errors and warnings."""

import math
import threading
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
    """The drop-in's warning points where torch's does (inside torch's trunc_normal_), not at its caller."""
    far = {"mean": 5.0, "std": 1.0, "a": -1.0, "b": 1.0}
    theirs = _warnings_of(lambda: torch.nn.init.trunc_normal_(torch.empty(10), **far))
    mine = _warnings_of(lambda: init.trunc_normal_(torch.empty(10), **far, seed=1))
    assert len(theirs) == 1 and theirs[0][2] == torch.nn.init.__file__
    assert mine == theirs


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
    """Warnings from recorded init code: torch's category and text, pointing at the same file and line (for
    trunc_normal_'s, inside torch's own init.py)."""
    fn = (lambda m: m.reset_parameters() if isinstance(m, torch.nn.Linear) else None) if policy == "default" \
        else _zero_and_far_init
    model = torch.nn.Sequential(torch.nn.Linear(0, 3))
    eager = _warnings_of(lambda: model.apply(fn))
    fused = _warnings_of(lambda: fastinit.apply(model, "default" if policy == "default" else fn))
    assert len(eager) == (1 if policy == "default" else 2)
    assert fused == eager


# references taken at import, before any recording (as transformers.initialization and megatron keep them)
_SAVED_INITS = {"kaiming_uniform_": torch.nn.init.kaiming_uniform_, "trunc_normal_": torch.nn.init.trunc_normal_}


class _WarnsWhileBuilt(torch.nn.Module):
    """Constructor init code that warns twice (a zero-element Kaiming weight, a trunc_normal_ mean far out), calling
    the functions through torch.nn.init's attributes or through references saved before recording."""

    def __init__(self, saved: bool):
        super().__init__()
        fns = _SAVED_INITS if saved else {n: getattr(torch.nn.init, n) for n in _SAVED_INITS}
        self.w = torch.nn.Parameter(torch.empty(0, 4))
        self.b = torch.nn.Parameter(torch.empty(4))
        fns["kaiming_uniform_"](self.w)
        fns["trunc_normal_"](self.b, mean=5.0, std=1.0, a=-1.0, b=1.0)


@pytest.mark.parametrize("saved", [False, True], ids=["attribute", "saved reference"])
def test_constructor_init_warns_where_torch_warns(saved):
    """Under empty_init the constructor's warnings point where eager construction's do, not into fastinit."""
    eager = _warnings_of(lambda: _WarnsWhileBuilt(saved))

    def built():
        with fastinit.empty_init():
            m = _WarnsWhileBuilt(saved)
        fastinit.materialize(m, "cpu", seed=0)

    assert len(eager) == 2
    assert _warnings_of(built) == eager


@pytest.mark.parametrize("saved", [False, True], ids=["attribute", "saved reference"])
def test_recorded_init_through_a_saved_reference_warns_where_torch_warns(saved):
    fns = _SAVED_INITS if saved else torch.nn.init.__dict__
    model = torch.nn.Linear(0, 4)

    def init_fn(m):
        if m is model:
            fns["kaiming_uniform_"](m.weight)
            fns["trunc_normal_"](m.bias, mean=5.0, std=1.0, a=-1.0, b=1.0)

    eager = _warnings_of(lambda: model.apply(init_fn))
    assert len(eager) == 2
    assert _warnings_of(lambda: fastinit.apply(model, init_fn)) == eager


_FAR = {"mean": 5.0, "std": 1.0, "a": -1.0, "b": 1.0}


class _WarnsOnUnrecorded(torch.nn.Module):
    """Constructor init code whose warning calls fastinit does not record, so runs torch's own code for them: a
    zero-element temporary, a non-contiguous temporary, a Parameter not yet assigned to the module."""

    def __init__(self, case: str):
        super().__init__()
        if case == "zero-element temporary":
            torch.nn.init.kaiming_uniform_(torch.empty(0, 4))
        elif case == "non-contiguous temporary":
            torch.nn.init.trunc_normal_(torch.empty(4, 4).t(), **_FAR)
        else:
            p = torch.nn.Parameter(torch.empty(0, 4))
            torch.nn.init.kaiming_uniform_(p)
        self.w = torch.nn.Parameter(torch.empty(3, 4))


@pytest.mark.parametrize("case", ["zero-element temporary", "non-contiguous temporary", "free Parameter"])
def test_torch_code_run_for_a_call_warns_where_eager_code_does(case):
    """Where fastinit runs torch's own function for a call, torch's warnings still name the caller (or torch's own
    trunc_normal_), not the fastinit frame that ran it: under empty_init, and in apply on untracked tensors."""
    eager = _warnings_of(lambda: _WarnsOnUnrecorded(case))

    def built():
        with fastinit.empty_init():
            m = _WarnsOnUnrecorded(case)
        fastinit.materialize(m, "cpu", seed=0)

    assert len(eager) == 1 and _warnings_of(built) == eager
    model = torch.nn.Linear(2, 3)

    def fn(m):
        if m is model:
            torch.nn.init.kaiming_uniform_(torch.empty(0, 3))
            torch.nn.init.trunc_normal_(torch.empty(3), **_FAR)

    eager = _warnings_of(lambda: model.apply(fn))
    assert len(eager) == 2 and _warnings_of(lambda: fastinit.apply(model, fn)) == eager


def test_another_threads_init_calls_warn_as_eager_while_one_thread_constructs():
    """While one thread is inside empty_init (torch.nn.init's attributes and code swapped process-wide), another
    thread's calls run torch's code: their warnings point where they would with nobody recording."""
    saved = _SAVED_INITS["kaiming_uniform_"]

    def calls():
        torch.nn.init.kaiming_uniform_(torch.empty(0, 4))
        saved(torch.empty(0, 4))
        torch.nn.init.trunc_normal_(torch.empty(4), **_FAR)

    alone = _warnings_of(calls)
    inside, go, done = [], threading.Event(), threading.Event()

    def constructing():
        with fastinit.empty_init():
            go.set()
            done.wait(30)

    t = threading.Thread(target=constructing)
    t.start()
    try:
        assert go.wait(30)
        inside = _warnings_of(calls)
    finally:
        done.set()
        t.join(30)
    assert len(alone) == 3 and inside == alone


def test_a_warning_torch_emits_before_it_raises_is_kept():
    """fastinit.init hands a sparse tensor to torch: torch's warning, then its error, both as torch's."""
    with warnings.catch_warnings(record=True) as theirs, pytest.raises(NotImplementedError):
        warnings.simplefilter("always")
        torch.nn.init.trunc_normal_(torch.zeros(3).to_sparse(), **_FAR)
    with warnings.catch_warnings(record=True) as mine, pytest.raises(NotImplementedError):
        warnings.simplefilter("always")
        init.trunc_normal_(torch.zeros(3).to_sparse(), **_FAR)
    assert len(theirs) == 1
    assert [(w.category, str(w.message), w.filename, w.lineno) for w in mine] == \
        [(w.category, str(w.message), w.filename, w.lineno) for w in theirs]


def test_warning_filters_and_once_per_site_act_as_on_torch():
    """A filter on torch.nn.init's module silences fastinit's copy of its warning, and the default action shows it
    once per site in torch's registry: after torch's own, fastinit's is not shown again."""
    far = {"mean": 5.0, "std": 1.0, "a": -1.0, "b": 1.0}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module="torch.nn.init")
        torch.nn.init.trunc_normal_(torch.empty(3), **far)
        init.trunc_normal_(torch.empty(3), **far, seed=1)
    assert rec == []
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("default")
        torch.nn.init.trunc_normal_(torch.empty(3), **far)
        init.trunc_normal_(torch.empty(3), **far, seed=1)
        model = torch.nn.Linear(2, 3)
        fastinit.apply(model, lambda m: torch.nn.init.trunc_normal_(m.bias, **far) if m is model else None)
    assert [str(w.message)[:24] for w in rec] == ["mean is more than 2 std "]


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


# ---- issue 10: autograd, inference tensors, nothing written on error, overlap, memory ----

VERSION_CALLS = [  # (name, shape, args): fastinit bumps _version exactly as torch's in-place ops do
    ("uniform_", (4, 6), (-1.0, 2.0)), ("normal_", (4, 6), (0.5, 2.0)), ("constant_", (4, 6), (0.25,)),
    ("zeros_", (4, 6), ()), ("ones_", (4, 6), ()), ("eye_", (4, 6), ()), ("dirac_", (6, 2, 3), (3,)),
    ("dirac_", (4, 4, 3, 3), (1,)), ("dirac_", (6, 2, 3), (-1,)), ("xavier_uniform_", (4, 6), ()),
    ("xavier_normal_", (4, 6), ()), ("kaiming_uniform_", (4, 6), ()), ("kaiming_normal_", (4, 6), ()),
    ("orthogonal_", (4, 6), ()), ("sparse_", (4, 6), (0.5,)), ("uniform_", (0, 3), ()),
    ("kaiming_uniform_", (0, 3), ()),
]


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("name,shape,args", VERSION_CALLS)
def test_version_counter_bumps_as_torch(name, shape, args, layout):
    def make():
        t = torch.zeros(shape[::-1]).permute(*reversed(range(len(shape)))) if layout == "transposed" else \
            torch.zeros(shape)
        return t.requires_grad_()

    theirs, mine = make(), make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(torch.nn.init, name)(theirs, *args)
        getattr(init, name)(mine, *args)
    assert mine._version == theirs._version


def test_trunc_normal_bumps_once_where_torch_bumps_once_or_twice():
    t = torch.zeros(1000)
    init.trunc_normal_(t, seed=1)
    assert t._version == 1  # torch: 1, or 2 when its rejection loop redrew (a copy_ back), which is the usual case


@pytest.mark.parametrize("fill", [lambda w: init.normal_(w, seed=1), lambda w: init.constant_(w, 0.5),
                                  lambda w: init.kaiming_uniform_(w, seed=1), lambda w: init.orthogonal_(w, seed=1)])
def test_backward_after_a_fused_write_raises_like_torch(fill):
    x = torch.randn(3, 4)
    for write in (lambda w: torch.nn.init.normal_(w), fill):
        w = torch.randn(4, 4, requires_grad=True)
        y = (x @ (w * w)).sum()  # saves w for backward
        write(w)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.backward()


def _pair():
    torch.manual_seed(0)
    return (torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Embedding(5, 3, padding_idx=1),
                                torch.nn.LayerNorm(3)),)


def test_apply_bumps_versions_as_eager_reset_parameters():
    (eager,), (fused,) = _pair(), _pair()
    before = {n: p._version for n, p in eager.named_parameters()}
    for m in eager.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    fastinit.apply(fused, seed=1)
    eager_bumps = {n: p._version - before[n] for n, p in eager.named_parameters()}
    fused_bumps = {n: p._version - before[n] for n, p in fused.named_parameters()}
    assert fused_bumps == eager_bumps


@pytest.mark.parametrize("name,args", [("uniform_", ()), ("normal_", ()), ("constant_", (1.0,)), ("zeros_", ()),
                                       ("eye_", ()), ("kaiming_uniform_", ()), ("orthogonal_", ()),
                                       ("sparse_", (0.5,))])
def test_inference_tensors_are_refused_with_torchs_message(name, args):
    with torch.inference_mode():
        t, t_torch = torch.full((3, 4), 7.0), torch.full((3, 4), 7.0)
    with pytest.raises(RuntimeError) as theirs:
        getattr(torch.nn.init, name)(t_torch, *args)  # torch raises after its kernel wrote (uniform_, normal_, ...)
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError) as mine:
        getattr(init, name)(t, *args)
    assert str(mine.value) == str(theirs.value)
    assert (t == 7).all() and torch.equal(torch.get_rng_state(), rng)
    with torch.inference_mode():  # inside inference mode torch writes them, and so does fastinit
        getattr(init, name)(t, *args)
    assert not (t == 7).all()


def test_apply_refuses_an_inference_model_before_writing():
    def make():
        with torch.inference_mode():
            return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Embedding(5, 3, padding_idx=1))

    model = make()
    with torch.inference_mode():
        before = [p.clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        make()[0].reset_parameters()  # eager torch refuses too (after writing)
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        fastinit.apply(model, seed=1)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def _plan(*pairs):
    from fastinit.plan import Plan
    from fastinit.sharding import entries_for
    return Plan([e for i, (t, spec) in enumerate(pairs) for e in entries_for(f"t{i}", t, spec, i)])


@pytest.mark.parametrize("bad", [
    lambda: (torch.full((3, 4), 7.0), S.Sparse(float("nan"))),
    lambda: (torch.full((3, 4), 7.0), S.Sparse(0.5, -1.0)),
    lambda: (torch.full((3, 4), 7.0), S.Orthogonal("x")),
    lambda: (torch.full((3, 4), 7.0, dtype=torch.float16), S.Orthogonal()),  # no half QR on the CPU
    lambda: (torch.full((3, 4), 7, dtype=torch.complex64), S.TruncNormal()),  # torch writes, then raises
    lambda: (torch.full((3, 4), 7, dtype=torch.int64), S.Normal()),
    lambda: (torch.full((3, 4), 7.0, dtype=torch.float16), S.Uniform(0.0, 1e5)),
    lambda: (torch.full((6, 2, 3), 7.0), S.Dirac(2.0)),  # torch zeroes, then raises
])
def test_nothing_written_when_a_torch_run_entry_fails(bad):
    fused = [torch.full((5, 5), 7.0), torch.full((4,), 7, dtype=torch.bfloat16)]
    t, spec = bad()
    plan = _plan((fused[0], S.Normal()), (fused[1], S.Constant(0.5)), (t, spec))
    with pytest.raises(Exception):  # noqa: B017 -- the type is torch's (checked by the differential tests)
        plan.execute(1)
    assert all((f == 7).all() for f in fused) and (t == 7).all()


@pytest.mark.parametrize("name,args", [("uniform_", (2.0, 1.0)), ("normal_", (0.0, -1.0)),
                                       ("trunc_normal_", (0.0, 1.0, 1.0, -1.0)), ("sparse_", (float("nan"),))])
def test_refused_call_leaves_the_rngs_alone(name, args):
    gen = torch.Generator().manual_seed(3)
    rng, gstate = torch.get_rng_state(), gen.get_state()
    for g in (None, gen):
        with pytest.raises((RuntimeError, ValueError)):
            getattr(init, name)(torch.zeros(4, 4), *args, generator=g)
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(gen.get_state(), gstate)


def test_interleaved_views_are_not_overlapping():
    base = torch.zeros(8, 6)
    views = [base[0::2], base[1::2], base[:, 0::3][1::2]]
    plan = _plan((views[0], S.Constant(1.0)), (views[1], S.Normal()))
    plan.execute(1)
    assert (base[0::2] == 1).all() and (base[1::2] != 0).all()
    flat = torch.zeros(12)
    a, b = flat.as_strided((2, 2), (3, 1)), flat.as_strided((2,), (3,), 2)  # {0, 1, 3, 4} and {2, 5}: gcd 1
    _plan((a, S.Constant(1.0)), (b, S.Constant(2.0))).execute(0)
    assert flat[:6].tolist() == [1, 1, 2, 1, 1, 2]
    for x, y in [(base[0:3], base[2:5]), (base[:, 0::2], base[:, 2::2][:, :1]), (a, flat[4:6])]:
        with pytest.raises(RuntimeError, match="overlapping memory"):
            _plan((x, S.Normal()), (y, S.Normal())).validate()


def test_views_share_memory_is_exact_on_random_views():
    from fastinit.overlap import views_share_memory
    rng = np.random.default_rng(0)
    for _ in range(300):
        base = torch.zeros(64)
        views = []
        for _ in range(2):
            shape = tuple(int(x) for x in rng.integers(1, 4, size=rng.integers(1, 3)))
            stride = tuple(int(x) for x in rng.integers(1, 7, size=len(shape)))
            extent = sum((n - 1) * s for n, s in zip(shape, stride))
            views.append(base.as_strided(shape, stride, int(rng.integers(0, 64 - extent))))
        marks = [{v.storage_offset() + sum(i * s for i, s in zip(idx, v.stride())) for idx in np.ndindex(*v.shape)}
                 for v in views]
        assert views_share_memory(*views) == bool(marks[0] & marks[1])


def test_strided_tensors_are_written_in_bounded_chunks(monkeypatch):
    from fastinit import strided
    from fastinit.backends import get_backend

    sizes = []
    cpu = type(get_backend("cpu"))
    real_fill = cpu.fill

    def spy(self, outs, table, params, seed):
        sizes.extend(o.numel() for o in outs)
        return real_fill(self, outs, table, params, seed)

    monkeypatch.setattr(cpu, "fill", spy)
    monkeypatch.setattr(strided, "CHUNK_ELEMENTS", 1000)
    for shape in [(300, 70), (3, 5, 700), (2000, 2), (2, 2500), (7, 3, 11, 13)]:
        t = torch.empty(shape[::-1]).permute(*reversed(range(len(shape))))  # transposed: not contiguous
        ref = torch.empty(shape)
        sizes.clear()
        init.normal_(t, seed=4, key=2, backend="cpu")
        assert sizes and max(sizes) <= 1000, (shape, max(sizes))
        init.normal_(ref, seed=4, key=2, backend="cpu")  # one contiguous launch
        assert torch.equal(t, ref)


def test_peak_memory_of_a_large_transposed_write_is_bounded():
    """Peak RSS (the process's ru_maxrss, in a fresh interpreter) of a 256 MiB transposed write: under one chunk
    (64 MiB) plus slack, where a full-size temporary added 256 MiB."""
    import subprocess
    import sys

    code = """
import resource, torch, fastinit
t = torch.zeros(8192, 8192).t()  # 256 MiB, touched
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fastinit.init.uniform_(t, seed=1, backend="cpu")
assert (t != 0).any()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    grew_mib = int(out.stdout.split()[-1])
    assert grew_mib < 128, grew_mib


def test_trunc_normal_far_tail_is_sampled_where_torch_practically_hangs():
    """N(5, 0.5) on [-1e5, 2]: torch's rejection sampler proposes from U(-1e5, 2) and accepts almost nothing (it
    ran for minutes here); fastinit samples the truncated normal by inverse CDF in float64 log space."""
    import scipy.stats as st

    for mean, std, a, b in [(5.0, 0.5, -1e5, 2.0), (0.0, 1.0, 40.0, 41.0), (0.0, 1.0, 5.0, 6.0)]:
        t = torch.empty(20000, dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            init.trunc_normal_(t, mean, std, a, b, seed=3)
        assert a <= t.min() and t.max() <= b
        ref = st.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
        assert st.kstest(t.numpy(), ref.cdf).pvalue > 1e-3


def test_trunc_normal_negative_std_samples_as_torch_does():
    """torch 2.13's sampler squares (x - mean) / std: a negative std draws TN(mean, |std|) (older torch raised in
    uniform_); fastinit follows the torch it runs with: values in [a, b], distributed as TN(mean, |std|)."""
    import scipy.stats as st

    t = torch.empty(20000)
    init.trunc_normal_(t, 0.0, -0.5, -1.0, 1.0, seed=2)
    assert -1 <= t.min() and t.max() <= 1
    assert st.kstest(t.double().numpy(), st.truncnorm(-2, 2, scale=0.5).cdf).pvalue > 1e-3


def test_deprecated_aliases_warn_as_torch():
    for old in ["uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
                "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse"]:
        args = {"constant": (0.5,), "sparse": (0.1,)}.get(old, ())
        shape = (4, 2, 3) if old == "dirac" else (4, 4)
        with pytest.warns(FutureWarning) as theirs:
            getattr(torch.nn.init, old)(torch.empty(shape), *args)
        with pytest.warns(FutureWarning) as mine:
            getattr(init, old)(torch.empty(shape), *args)
        assert [str(w.message) for w in mine] == [str(w.message) for w in theirs]
        assert mine[0].filename == __file__


@pytest.mark.parametrize("mean,std", [(0.0, float("inf")), (0.0, 1e300), (float("nan"), 1.0), (float("inf"), 1.0),
                                      (0.0, float("nan"))])
def test_trunc_normal_degenerate_parameters_give_uniform_as_torch(mean, std):
    """torch's rejection sampler accepts every U(a, b) proposal when mean/std are NaN or infinite (or std so huge
    that the density is flat): fastinit gives U(a, b) too, where it gave NaN or one constant."""
    import scipy.stats as st

    for fn in (torch.nn.init.trunc_normal_, lambda t, *a: init.trunc_normal_(t, *a, seed=5)):
        t = torch.empty(20000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(t, mean, std, -1.0, 3.0)
        assert -1 <= t.min() and t.max() <= 3
        assert st.kstest(t.double().numpy(), st.uniform(-1, 4).cdf).pvalue > 1e-3


@pytest.mark.parametrize("policy", [
    fastinit.Rules([("0.weight", fastinit.Uniform(1.0, 0.0))]),  # refused by the plan's checks
    fastinit.Rules([("1.weight", fastinit.Sparse(0.5)), ("0.weight", fastinit.Orthogonal())]),  # torch-run, 1-D
    lambda m: torch.nn.init.normal_(m.weight, std=-1.0) if isinstance(m, torch.nn.Linear) else None,  # at record
])
def test_refused_apply_leaves_every_tensor_and_the_rngs_alone(policy):
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    before = {n: t.detach().clone() for n, t in m.state_dict().items()}
    gen = torch.Generator().manual_seed(5)
    rng, gstate = torch.get_rng_state(), gen.get_state()
    with pytest.raises((RuntimeError, ValueError)):
        fastinit.apply(m, policy)
    with pytest.raises((RuntimeError, ValueError)):
        fastinit.apply(m, policy, generator=gen)
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(gen.get_state(), gstate)
    assert all(torch.equal(t, before[n]) for n, t in m.state_dict().items())


def test_a_check_that_passed_for_one_dtype_still_runs_for_another():
    # torch-check results are memoized per (spec, shape, dtype, device, layout, size class): the same spec object
    # that passed for float32 must still be refused for float16, where b=1e5 is out of range
    spec = fastinit.Uniform(0.0, 1e5)
    ok = torch.nn.Parameter(torch.empty(4, 3))
    fastinit.apply(torch.nn.ParameterList([ok]), fastinit.Rules([("*", spec)]), seed=0)
    half = torch.full((4, 3), 7.0, dtype=torch.float16)
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.init.uniform_(half.clone(), 0.0, 1e5)
    model = torch.nn.ParameterList([torch.nn.Parameter(half)])
    with pytest.raises(RuntimeError) as mine:
        fastinit.apply(model, fastinit.Rules([("*", spec)]), seed=0)
    assert str(mine.value) == str(theirs.value) and (model[0] == 7).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("spec", [fastinit.Uniform(0.0, 1.0), fastinit.Normal(0.0, 1e-3),
                                  fastinit.TruncNormal(0, 1, -1, 2)])
def test_strided_writes_use_their_dtypes_tables(dtype, spec, monkeypatch):
    # a transposed tensor is written in chunks: each chunk's table must be the one of its dtype (contract v2:
    # uniform bounds per dtype, float64 in double), so it equals the contiguous write, transposed back
    monkeypatch.setattr("fastinit.strided.CHUNK_ELEMENTS", 7)
    rules = fastinit.Rules([("*", spec)])
    flat = torch.nn.ParameterDict({"w": torch.nn.Parameter(torch.empty(12, 10, dtype=dtype))})
    fastinit.apply(flat, rules, seed=4)
    strided = torch.nn.ParameterDict({"w": torch.nn.Parameter(torch.empty(10, 12, dtype=dtype).t())})
    fastinit.apply(strided, rules, seed=4)
    assert not strided["w"].is_contiguous()
    assert torch.equal(strided["w"].detach(), flat["w"].detach())


@pytest.mark.parametrize("a,b", [(1e308, 1.7e308), (-1.7e308, -0.9e308), (8.9e307, 1.79e308)])
def test_float64_uniform_near_the_double_limit_is_spread_like_torchs(a, b):
    # (a + b) / 2 overflows here: the centre is a/2 + b/2, so the values are spread over [a, b) as torch's
    # are, not all clamped to the top (what an infinite centre gave)
    theirs = torch.nn.init.uniform_(torch.empty(4096, dtype=torch.float64), a, b)
    mine = init.uniform_(torch.empty(4096, dtype=torch.float64), a, b, seed=1)
    assert bool((mine >= a).all() and (mine < b).all() and mine.isfinite().all())
    assert mine.unique().numel() > 4000 and theirs.unique().numel() > 4000
    import scipy.stats as st

    u_mine, u_theirs = (mine - a) / (b - a), (theirs - a) / (b - a)  # both ~ U(0, 1): the same spread
    assert st.ks_2samp(u_mine.numpy(), u_theirs.numpy()).pvalue > 1e-4
