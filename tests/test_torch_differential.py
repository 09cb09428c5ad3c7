"""Differential fuzzing of fastinit.init against torch.nn.init: the same call on twin inputs, every observable compared.

A seeded generator draws (function, arguments, tensor kind, dtype, shape, generator=) from pools of valid,
boundary and invalid values (NaN, inf, huge, wrong types), calls torch.nn.init and fastinit.init on two
identical inputs, and compares: exception type and message, warnings (category and text), return identity,
shape/stride/dtype/requires_grad/is_leaf, version-counter bumps, whether torch's global RNG and the given
generator advanced, "nothing written" on error, bitwise values of the deterministic functions, and bounds
and finiteness of the random ones. torch is the oracle; the few places where fastinit deliberately differs
are listed in ``_expected_difference`` with the reason.

CI runs ``CI_CALLS`` calls; ``FASTINIT_FUZZ_CALLS=100000 pytest -m slow tests/test_torch_differential.py``
runs a larger opt-in campaign (a different seed per run with ``FASTINIT_FUZZ_SEED``).
"""

from __future__ import annotations

import math
import os
import random
import signal
import warnings
from dataclasses import dataclass, field

import pytest
import torch

from fastinit import init as F

# Checks that need issue 10 item 5 (values inside [a, b) in every dtype, float64 arithmetic for float64
# tensors): contract v2, lands with wt-simd. A failing pending check is reported, not counted as a
# mismatch; the lead empties this set after the merge so that they are enforced.
PENDING_CHECKS: set[str] = set()

CI_CALLS = 3000
NAN, INF = float("nan"), float("inf")

DETERMINISTIC = {"constant_", "ones_", "zeros_", "eye_", "dirac_", "constant", "eye", "dirac"}
UNIFORM_FAMILY = {"uniform_", "xavier_uniform_", "kaiming_uniform_", "uniform", "xavier_uniform", "kaiming_uniform"}

_BAD = ["x", None, 1 + 1j, [1.0]]
ARGS = {  # per function: one pool per positional argument after the tensor (valid values first)
    "uniform_": [[0.0, -1.0, 0.5, 1, -3e38, 1e-3, 1.0, True, 1e5, 1e300, 3e38, 1e40, NAN, INF, -INF, *_BAD],
                 [1.0, 2.0, 0.5, 1.0000001, 1e-3, 1e5, 1e300, 3e38, 1e40, NAN, INF, -1.0, *_BAD]],
    "normal_": [[0.0, 1.0, -5.0, 1e5, 1e300, NAN, INF, *_BAD],
                [1.0, 0.02, 0.0, 1e-50, 1e5, 1e300, -1.0, NAN, INF, *_BAD]],
    "trunc_normal_": [[0.0, 1.0, 5.0, -3.0, NAN, INF, "x"], [1.0, 0.5, 0.02, 0.0, -1.0, 1e-3, 1e300, NAN, INF, "x"],
                      [-2.0, -1.0, 0.0, 1.0, 0.5, -INF, -1e5, NAN, "x"],
                      [2.0, 1.0, 0.5, -1.0, 3.0, INF, 1e5, NAN, "x"]],
    "constant_": [[0.0, 1.0, -0.0, 0.1, 1 / 3, -2.5e-5, 7, True, 1e5, 1e40, 2**60 + 1, 2**200, NAN, INF, "1", None,
                   1 + 1j, torch.tensor(2.5), torch.tensor([1.0, 2.0])]],
    "ones_": [], "zeros_": [], "eye_": [],
    "dirac_": [[1, 2, 3, True, -1, 0, 2.0, "x"]],
    "xavier_uniform_": [[1.0, 0.5, math.sqrt(2), 0.0, -1.0, 1e300, NAN, INF, *_BAD]],
    "xavier_normal_": [[1.0, 0.5, math.sqrt(2), 0.0, -1.0, 1e300, NAN, INF, *_BAD]],
    "kaiming_uniform_": [[0, math.sqrt(5), 0.2, -1.0, NAN, "x", None], ["fan_in", "fan_out", "FAN_OUT", "middle"],
                         ["leaky_relu", "relu", "linear", "tanh", "selu", "conv2d", "swish"]],
    "kaiming_normal_": [[0, math.sqrt(5), 0.2, -1.0, NAN, "x", None], ["fan_in", "fan_out", "FAN_OUT", "middle"],
                        ["leaky_relu", "relu", "linear", "tanh", "selu", "conv2d", "swish"]],
    "orthogonal_": [[1.0, 2.0, 0.0, -1.0, NAN, "x"]],
    "sparse_": [[0.1, 0.0, 0.5, 1.0, 2.0, -1.0, NAN, INF, "x"], [0.01, 1.0, 0.0, -1.0, NAN, "x"]],
}
TAKES_GENERATOR = {"uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                   "kaiming_normal_", "orthogonal_", "sparse_"}
ALIASES = {name[:-1]: name for name in ("uniform_", "normal_", "constant_", "eye_", "dirac_", "xavier_uniform_",
                                        "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                                        "sparse_")}

SHAPES = [(4,), (3, 5), (5, 3), (1, 1), (8, 8), (0, 3), (3, 0), (0,), (), (2, 3, 4), (6, 2, 3), (4, 2, 3, 3),
          (6, 4, 1, 1, 3), (2, 2, 2, 2, 2, 2)]
DTYPES = [torch.float32] * 4 + [torch.float16, torch.bfloat16, torch.float64] * 2 + [
    torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]
KINDS = ["contiguous"] * 4 + ["transposed", "sliced", "expanded", "channels_last", "overlapping", "leaf_grad",
                              "non_leaf", "inference", "meta", "sparse", "parameter", "non_tensor"]


def _sentinel(dtype):
    return True if dtype == torch.bool else 7


def make(kind: str, shape: tuple, dtype: torch.dtype):
    """One input of ``kind``; called twice per case, giving twins with equal contents and layout."""
    full = lambda s: torch.full(s, _sentinel(dtype), dtype=dtype)  # noqa: E731
    if kind == "transposed" and len(shape) >= 2:
        return full(shape[::-1]).permute(*reversed(range(len(shape))))
    if kind == "sliced" and len(shape) >= 1:
        return full(shape[:-1] + (2 * shape[-1] + 1,))[..., 1::2]
    if kind == "expanded" and len(shape) >= 1:
        return full((1,) + shape[1:]).expand(shape)
    if kind == "channels_last" and len(shape) == 4:
        return full(shape).to(memory_format=torch.channels_last)
    if kind == "overlapping" and len(shape) == 2 and shape[0] > 1 and shape[1] > 1:
        return full((shape[0] + shape[1],)).as_strided(shape, (1, 1))  # sliding windows share elements
    if kind == "leaf_grad" and (dtype.is_floating_point or dtype.is_complex):
        return full(shape).requires_grad_()
    if kind == "non_leaf" and (dtype.is_floating_point or dtype.is_complex):
        return full(shape).requires_grad_() * 1
    if kind == "inference":
        with torch.inference_mode():
            return full(shape)
    if kind == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    if kind == "sparse" and len(shape) == 2:
        return full(shape).to_sparse()
    if kind == "parameter" and (dtype.is_floating_point or dtype.is_complex):
        return torch.nn.Parameter(full(shape))
    if kind == "non_tensor":
        return [[1.0] * (shape[-1] if shape else 1)]
    return full(shape)


@dataclass
class Outcome:
    """Everything observable about one call."""

    error: tuple | None = None
    warns: list = field(default_factory=list)
    returned_self: bool | None = None
    global_rng_moved: bool = False
    generator_moved: bool = False
    version_delta: int | None = None
    meta: tuple | None = None
    values: torch.Tensor | None = None
    untouched: bool | None = None


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _tensor_meta(t):
    if not isinstance(t, torch.Tensor):
        return None
    strides = None if t.layout != torch.strided else t.stride()
    return (tuple(t.shape), strides, t.dtype, t.device.type, t.layout, t.requires_grad, t.is_leaf,
            type(t.grad_fn).__name__, type(t).__name__)


def _plain_values(t):
    if not isinstance(t, torch.Tensor) or t.is_meta or t.layout != torch.strided:
        return None
    return t.detach().clone()


def _version(t):
    if not isinstance(t, torch.Tensor) or t.is_sparse or t.is_inference():
        return None
    return t._version


def call(fn, t, args, gen_arg):
    """Run ``fn(t, *args[, generator])`` and observe it (a 2 s alarm catches torch's rejection-loop hangs)."""
    out = Outcome()
    before = _plain_values(t)
    v0 = _version(t)
    rng0 = torch.get_rng_state()
    gen_state0 = gen_arg.get_state() if isinstance(gen_arg, torch.Generator) else None
    extra = (gen_arg,) if gen_arg is not _NO_GEN else ()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(2)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ret = fn(t, *args, *extra)
        out.returned_self = ret is t
    except _Hang:
        out.error = ("hang", "")
    except Exception as e:  # noqa: BLE001 -- every exception is an observable compared with torch's
        out.error = (type(e), str(e))
        caught = []
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out.warns = [(w.category, str(w.message)) for w in caught]
    out.global_rng_moved = not torch.equal(rng0, torch.get_rng_state())
    out.generator_moved = gen_state0 is not None and not torch.equal(gen_state0, gen_arg.get_state())
    v1 = _version(t)
    out.version_delta = None if v0 is None else v1 - v0
    out.meta = _tensor_meta(t)
    out.values = _plain_values(t)
    if before is not None:
        out.untouched = _bits_equal(before, out.values)
    return out


_NO_GEN = object()


def _bits(t):
    t = t.contiguous()
    if t.is_complex():
        t = torch.view_as_real(t).contiguous()
    if t.dtype == torch.bool:
        return t.to(torch.uint8)
    if t.is_floating_point():
        return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])
    return t


def _bits_equal(a, b):
    return a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def _expected_difference(name, args, gen_arg, kind, theirs: Outcome, mine: Outcome, check: str) -> bool:
    """Where fastinit differs from torch on purpose (each with the reason); True to accept the difference."""
    base = ALIASES.get(name, name)
    if check == "version" and base == "trunc_normal_" and theirs.error is None:
        # torch's rejection sampler bumps once, or twice when it had to redraw (a copy_ back): fastinit writes once
        return theirs.version_delta in (1, 2) and mine.version_delta == 1
    if check == "global_rng" and base == "sparse_" and isinstance(gen_arg, torch.Generator):
        # torch.nn.init.sparse_ draws its row permutations from the global RNG even with generator=;
        # fastinit draws only from the generator and leaves the global RNG alone
        return theirs.global_rng_moved and not mine.global_rng_moved
    if theirs.error is not None and theirs.error == mine.error:
        # torch writes or draws before some of its errors (dirac_ zeroes before range(groups) fails;
        # trunc_normal_ on a complex tensor samples before its comparison fails; orthogonal_ draws before
        # its copy_ into an inference tensor fails): fastinit raises the same error before writing or drawing
        if check == "untouched":
            return mine.untouched is True
        if check == "version":
            return mine.version_delta == 0
        if check == "global_rng":
            return not mine.global_rng_moved
        if check == "generator":
            return not mine.generator_moved
    return False


def _full_args(args, defaults):
    return list(args) + list(defaults[len(args):])


def compare(name, args, gen_arg, kind, dtype, theirs: Outcome, mine: Outcome) -> tuple[list[str], list[str]]:
    """(mismatches, failed pending checks) between torch's and fastinit's outcomes of the same call."""
    bad, pending = [], []

    def check(label, ok, detail=""):
        if not ok and not _expected_difference(name, args, gen_arg, kind, theirs, mine, label):
            (pending if label in PENDING_CHECKS else bad).append(f"{label}: {detail}")

    if theirs.error and theirs.error[0] == "hang":
        # torch hangs; fastinit must answer (values or a clear error) instead
        check("torch_hang", mine.error is None or mine.error[0] != "hang", "fastinit hangs too")
        return bad, pending
    check("exception", theirs.error == mine.error, f"torch {theirs.error!r} fastinit {mine.error!r}")
    check("warnings", theirs.warns == mine.warns, f"torch {theirs.warns} fastinit {mine.warns}")
    check("returned", theirs.returned_self == mine.returned_self, f"{theirs.returned_self} {mine.returned_self}")
    check("meta", theirs.meta == mine.meta, f"torch {theirs.meta} fastinit {mine.meta}")
    check("version", theirs.version_delta == mine.version_delta, f"{theirs.version_delta} {mine.version_delta}")
    check("global_rng", theirs.global_rng_moved == mine.global_rng_moved,
          f"torch moved={theirs.global_rng_moved} fastinit moved={mine.global_rng_moved}")
    check("generator", theirs.generator_moved == mine.generator_moved,
          f"torch moved={theirs.generator_moved} fastinit moved={mine.generator_moved}")
    if mine.error is not None:
        check("untouched", mine.untouched in (True, None), "fastinit wrote before raising")
        return bad, pending
    if theirs.error is not None or mine.values is None:
        return bad, pending
    base = ALIASES.get(name, name)
    ours, ref = mine.values, theirs.values
    if base in DETERMINISTIC:
        check("values", _bits_equal(ref, ours), f"torch {ref} fastinit {ours}")
        return bad, pending
    if ours.numel() == 0 or dtype.is_complex or not dtype.is_floating_point:
        return bad, pending
    o, r = ours.double(), ref.double()
    limit = torch.finfo(dtype).max / 16  # far from overflow: whether a value overflows is not left to chance
    if all(isinstance(x, (int, float)) and abs(x) < limit for x in args):
        # finite parameters: the same overflow (inf) and NaN behaviour; fastinit's float64 arithmetic is contract v2
        label = "float64_precision" if dtype == torch.float64 else "finite"
        check(label, bool(o.isnan().any()) == bool(r.isnan().any()), f"NaN: torch {ref} fastinit {ours}")
        check(label, bool(o.isfinite().all()) == bool(r.isfinite().all()), f"inf: torch {ref} fastinit {ours}")
    if base == "uniform_":
        a, b = (float(x) for x in _full_args(args, (0.0, 1.0)))
        lo = torch.tensor(a, dtype=torch.float64).to(dtype).double().item()
        inside = bool((o >= lo).all()) and (bool((o < b).all()) or a == b or o.isinf().any())
        check("uniform_bounds", inside, f"U({a!r}, {b!r}) {dtype}: [{o.min().item()!r}, {o.max().item()!r}]")
        if dtype == torch.float64 and b > a and o.numel() >= 8:
            # torch is the oracle: one value is a defect only where torch's values vary
            check("float64_precision", o.unique().numel() > 1 or r.unique().numel() == 1,
                  f"U({a!r}, {b!r}) gives one value")
    if base == "trunc_normal_":
        a, b = (float(x) for x in _full_args(args, (0.0, 1.0, -2.0, 2.0))[2:])
        lo, hi = (torch.tensor([a, b], dtype=torch.float64).to(dtype).double()).tolist()
        check("trunc_bounds", bool(((o >= lo) & (o <= hi)).all()), f"[{a}, {b}] {dtype}: {ours}")
    if base == "normal_" and dtype == torch.float64 and o.numel() >= 8:
        mean, std = (float(x) for x in _full_args(args, (0.0, 1.0)))
        check("float64_precision", bool((o != mean).any()) or std == 0.0 or not bool((r != mean).any()),
              f"N({mean!r}, {std!r}) float64: {ours}")
    return bad, pending


def draw_case(rng: random.Random):
    name = rng.choice(list(ARGS) + list(ALIASES))
    base = ALIASES.get(name, name)
    pools = ARGS[base]
    # mostly valid arguments (the first few of each pool), sometimes anything from the pool
    args = [rng.choice(p[:3]) if rng.random() < 0.6 else rng.choice(p) for p in pools]
    n_args = len(args)
    if n_args and rng.random() < 0.3:  # fewer positional arguments: torch's defaults
        args = args[:rng.randrange(n_args + 1)]
    if base == "sparse_" and not args:
        args = [0.1]
    gen_arg = _NO_GEN
    if base in TAKES_GENERATOR and len(args) == n_args:
        r = rng.random()
        gen_arg = (None if r < 0.3 else torch.Generator().manual_seed(rng.randrange(2**31)) if r < 0.85
                   else rng.choice(["x", 3]))
    return name, args, gen_arg, rng.choice(KINDS), rng.choice(DTYPES), rng.choice(SHAPES)


def run_campaign(n_calls: int, seed: int):
    rng = random.Random(seed)
    mismatches, pending = [], []
    for i in range(n_calls):
        name, args, gen_arg, kind, dtype, shape = draw_case(rng)
        gseed = rng.randrange(2**31)
        gens = [gen_arg, gen_arg]
        if isinstance(gen_arg, torch.Generator):  # twin generators with the same state
            gens = [torch.Generator().manual_seed(gseed), torch.Generator().manual_seed(gseed)]
        torch.manual_seed(gseed)
        theirs = call(getattr(torch.nn.init, name), make(kind, shape, dtype), args, gens[0])
        torch.manual_seed(gseed)
        mine = call(getattr(F, name), make(kind, shape, dtype), args, gens[1])
        bad, pend = compare(name, args, gens[0], kind, dtype, theirs, mine)
        case = f"#{i} {name}{tuple(args)!r} generator={gen_arg!r} kind={kind} dtype={dtype} shape={shape}"
        mismatches += [f"{case}: {b}" for b in bad]
        pending += [f"{case}: {p}" for p in pend]
    return mismatches, pending


def _report(mismatches, pending):
    if pending:
        print(f"{len(pending)} pending (contract v2) check failures, e.g.:\n  " + "\n  ".join(pending[:10]))
    assert not mismatches, f"{len(mismatches)} mismatches with torch:\n  " + "\n  ".join(mismatches[:40])


def test_differential_fuzz_ci():
    """A few thousand seeded calls, zero mismatches with torch.nn.init."""
    _report(*run_campaign(CI_CALLS, seed=20261201))


@pytest.mark.slow
@pytest.mark.skipif("FASTINIT_FUZZ_CALLS" not in os.environ, reason="opt-in: set FASTINIT_FUZZ_CALLS=<n>")
def test_differential_fuzz_large():
    """The opt-in campaign: FASTINIT_FUZZ_CALLS calls from FASTINIT_FUZZ_SEED (default 1)."""
    _report(*run_campaign(int(os.environ["FASTINIT_FUZZ_CALLS"]), seed=int(os.environ.get("FASTINIT_FUZZ_SEED", 1))))


def test_the_fuzzer_sees_a_mismatch():
    """The comparison is not vacuous: a deliberately wrong fill, an extra warning and a missing bump are caught."""
    t1, t2 = torch.zeros(3), torch.zeros(3)
    theirs = call(torch.nn.init.constant_, t1, [1.0], _NO_GEN)

    def wrong(t, val):
        warnings.warn("extra", stacklevel=2)
        t.detach().fill_(2.0)  # shares the version counter: bumps, like torch; values differ
        return t

    mine = call(wrong, t2, [1.0], _NO_GEN)
    bad, _ = compare("constant_", [1.0], _NO_GEN, "contiguous", torch.float32, theirs, mine)
    assert any(b.startswith("values") for b in bad) and any(b.startswith("warnings") for b in bad)

    def no_bump(t, val):
        with torch.no_grad():
            t.data.fill_(val)  # .data has its own version counter: no bump
        return t

    mine = call(no_bump, torch.zeros(3), [1.0], _NO_GEN)
    bad, _ = compare("constant_", [1.0], _NO_GEN, "contiguous", torch.float32, theirs, mine)
    assert [b.split(":")[0] for b in bad] == ["version"]


# ---- the issue's cases, one by one, through the same harness (each failed before issue 10's fixes) ----

def _inference(shape, dtype=torch.float32):
    with torch.inference_mode():
        return torch.full(shape, 7, dtype=dtype)


ISSUE_CASES = [  # (function, tensor factory, arguments, generator argument)
    ("uniform_", lambda: torch.full((4, 4), 7, dtype=torch.float16), [0.0, 1e5], _NO_GEN),  # fp16 bound: raises
    ("uniform_", lambda: torch.full((4, 4), 7, dtype=torch.float64), [0.0, 1e300], _NO_GEN),  # float64: accepted
    ("uniform_", lambda: torch.full((4, 4), 7, dtype=torch.float32), [-3e38, 3e38], _NO_GEN),  # to - from overflows
    ("constant_", lambda: torch.full((4,), 7.0), [1e40], _NO_GEN),
    ("constant_", lambda: torch.full((4,), 7.0), [2**200], _NO_GEN),
    ("constant_", lambda: torch.full((4,), 7.0), ["1"], _NO_GEN),
    ("constant_", lambda: torch.full((1,), 7, dtype=torch.bfloat16), [1e40], _NO_GEN),  # 1 element: torch gives inf
    ("constant_", lambda: torch.full((3,), 7, dtype=torch.float16), [1e5], _NO_GEN),
    ("constant_", lambda: torch.full((3,), 7, dtype=torch.int64), [2**60 + 1], _NO_GEN),
    ("trunc_normal_", lambda: torch.full((64,), 7.0), [0.0, 1.0, 1.0, -1.0], _NO_GEN),  # a > b
    ("trunc_normal_", lambda: torch.full((64,), 7.0), [0.0, 1.0, NAN, 2.0], _NO_GEN),
    ("trunc_normal_", lambda: torch.full((64,), 7.0), [0.0, INF, -2.0, 2.0], _NO_GEN),  # torch: U(a, b)
    ("trunc_normal_", lambda: torch.full((64,), 7.0), [0.0, 1e300, -2.0, 2.0], _NO_GEN),  # flat: U(a, b)
    ("trunc_normal_", lambda: torch.full((64,), 7.0), [0.0, -1.0, -2.0, 2.0], _NO_GEN),  # torch 2.13: |std|
    ("trunc_normal_", lambda: torch.full((64,), 7.0), [0.0, 0.0, -2.0, 2.0], _NO_GEN),  # ZeroDivisionError
    ("trunc_normal_", lambda: torch.full((64,), 7.0), [1e200, 1.0, -1.0, 1.0], _NO_GEN),  # OverflowError
    ("trunc_normal_", lambda: torch.full((4,), 7, dtype=torch.int64), [1.0, 1.0, 0.0, INF], _NO_GEN),
    ("trunc_normal_", lambda: torch.full((4,), 7, dtype=torch.complex64), [], _NO_GEN),  # torch writes, then raises
    ("dirac_", lambda: torch.full((6, 2, 3), 7.0), [-1], _NO_GEN),  # torch: zeros
    ("dirac_", lambda: torch.full((6, 2, 3), 7.0), [2.0], _NO_GEN),  # torch: zeros, then TypeError
    ("dirac_", lambda: torch.full((6, 2, 3), 7.0), [0], _NO_GEN),
    ("dirac_", lambda: torch.full((6, 2, 3), 7.0), [3], _NO_GEN),  # 1 + 3 * 2 version bumps
    ("uniform_", lambda: torch.full((3,), 7.0), [0.0, 1.0], "x"),
    ("normal_", lambda: torch.full((3,), 7.0), [0.0, 1.0], 3),
    ("xavier_uniform_", lambda: torch.full((3, 4), 7.0), [1.0], [1]),
    ("uniform_", lambda: torch.full((3,), 7, dtype=torch.int64), [0.0, 1.0], _NO_GEN),
    ("normal_", lambda: torch.full((3,), True), [], _NO_GEN),
    ("normal_", lambda: torch.full((0,), 7, dtype=torch.int64), [], _NO_GEN),  # empty: torch accepts
    ("uniform_", lambda: torch.full((0, 3), 7.0), [2.0, 1.0], _NO_GEN),  # zero elements: still checked
    ("xavier_uniform_", lambda: torch.full((0, 3), 7.0), [], _NO_GEN),  # no RNG drawn
    ("constant_", lambda: torch.full((0,), 7.0), [1e40], _NO_GEN),
    ("uniform_", lambda: torch.zeros(1, 4).expand(3, 4), [], _NO_GEN),  # torch's message, no "tensor: " prefix
    ("constant_", lambda: torch.zeros(1, 4).expand(3, 4), [2.5], _NO_GEN),  # deterministic: torch accepts
    ("eye_", lambda: torch.zeros(1, 4).expand(3, 4), [], _NO_GEN),
    ("zeros_", lambda: torch.zeros(8).as_strided((3, 4), (1, 1)), [], _NO_GEN),  # windows: torch's write order
    ("eye_", lambda: torch.full((8,), 7.0).as_strided((3, 5), (1, 1)), [], _NO_GEN),
    ("normal_", lambda: torch.zeros(3, 4).to_sparse(), [], _NO_GEN),
    ("zeros_", lambda: torch.ones(3, 4).to_sparse(), [], _NO_GEN),
    ("normal_", lambda: torch.empty(3, 4, dtype=torch.int64, device="meta"), [], _NO_GEN),
    ("kaiming_uniform_", lambda: torch.empty(3, 4, device="meta"), [], _NO_GEN),  # meta: a version bump, as torch
    ("uniform_", lambda: [1.0, 2.0], [], _NO_GEN),
    ("kaiming_normal_", lambda: None, [], _NO_GEN),
    ("xavier_normal_", lambda: torch.full((6, 2, 3), 7, dtype=torch.bfloat16), [1e300], _NO_GEN),  # no RuntimeWarning
    ("uniform_", lambda: _inference((3, 4)), [], _NO_GEN),
    ("constant_", lambda: _inference((3, 4)), [1.0], _NO_GEN),
    ("orthogonal_", lambda: _inference((3, 4)), [1.0], torch.Generator().manual_seed(0)),  # torch draws, then raises
    ("orthogonal_", lambda: _inference((0, 4)), [], _NO_GEN),  # zero elements: torch returns first
    ("orthogonal_", lambda: torch.full((6, 8), 7.0)[:, ::2].reshape(6, 4)[:, :3], ["x"], _NO_GEN),
    ("orthogonal_", lambda: torch.full((2, 3, 9), 7.0)[..., ::3], [], _NO_GEN),  # view_as fails: torch's error
    ("orthogonal_", lambda: torch.full((3, 4), 7, dtype=torch.float16), [], _NO_GEN),  # no half QR on the CPU
    ("sparse_", lambda: torch.full((3, 4), 7.0), [NAN], _NO_GEN),
    ("sparse_", lambda: torch.full((3, 4), 7.0), [INF], _NO_GEN),
    ("sparse_", lambda: torch.full((3, 4), 7.0), [0.5, -1.0], _NO_GEN),
    ("kaiming_uniform_", lambda: torch.full((3, 4), 7.0), [], _NO_GEN),
    ("normal", lambda: torch.full((3, 4), 7.0), [], _NO_GEN),  # deprecated alias: torch's FutureWarning
    ("xavier_uniform", lambda: torch.full((3, 4), 7.0), [], _NO_GEN),
    ("constant", lambda: torch.full((3, 4), 7.0), [0.5], _NO_GEN),
]


@pytest.mark.parametrize("name,factory,args,gen_arg", ISSUE_CASES)
def test_issue_case_matches_torch(name, factory, args, gen_arg):
    dtype = factory().dtype if isinstance(factory(), torch.Tensor) else torch.float32
    gens = [gen_arg, gen_arg]
    if isinstance(gen_arg, torch.Generator):
        gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)]
    torch.manual_seed(11)
    theirs = call(getattr(torch.nn.init, name), factory(), args, gens[0])
    torch.manual_seed(11)
    mine = call(getattr(F, name), factory(), args, gens[1])
    bad, _ = compare(name, args, gens[0], "issue", dtype, theirs, mine)
    assert not bad, bad
