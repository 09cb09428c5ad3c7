"""The C++ CPU kernel (``torch.ops.fastinit.fill_group``) against the pure-PyTorch reference, bit for bit."""

from __future__ import annotations

import gc
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastinit import _ext, stream
from fastinit import tables as T
from fastinit.reference import fill_group_reference
from fastinit.tables import Resolved, ShardMap, build_tables

_OK, _WHY = _ext.load()
pytestmark = pytest.mark.skipif(not _OK, reason=f"CPU extension not built: {_WHY}")

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
_INT_VIEW = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
             torch.float64: torch.int64}
INF = math.inf


def _uniform(a: float, b: float) -> Resolved:
    """U(a, b) as the plan resolves it (exact doubles; build_tables rounds per dtype)."""
    return Resolved(T.KIND_UNIFORM, ((a + b) / 2, (b - a) / 2, 0, 0, a, b))


def _trunc_params(mean: float, std: float, a: float, b: float) -> tuple[float, ...]:
    alpha, beta = (a - mean) / std, (b - mean) / std
    phi_a = 0.5 * (1 + math.erf(alpha / math.sqrt(2)))
    phi_b = 0.5 * (1 + math.erf(beta / math.sqrt(2)))
    return (phi_a + phi_b - 1, phi_b - phi_a, mean, std, a, b)


# (name, Resolved) covering every kind and the parameter shapes the plan produces.
SPECS = [
    ("const_0.1", Resolved(T.KIND_CONSTANT, (0.1, 0, 0, 0, 0, 0))),
    ("const_1/3", Resolved(T.KIND_CONSTANT, (1 / 3, 0, 0, 0, 0, 0))),
    ("const_neg", Resolved(T.KIND_CONSTANT, (-2.7182818284590455, 0, 0, 0, 0, 0))),
    ("const_big", Resolved(T.KIND_CONSTANT, (1e5, 0, 0, 0, 0, 0))),  # float16: inf, as .to()
    ("const_zero", Resolved(T.KIND_CONSTANT, (0.0, 0, 0, 0, 0, 0))),
    ("uniform_sym", _uniform(-1 / math.sqrt(768), 1 / math.sqrt(768))),
    ("uniform_asym", _uniform(-1.5, 2.0)),
    ("uniform_01", _uniform(0.0, 1.0)),  # bf16/fp16: values that round to 1 are clamped below it
    ("uniform_narrow", _uniform(1.0, 1.0000001)),  # float32: the clamp to [a, b) does all the work
    ("uniform_f64_narrow", _uniform(0.1, 0.1 + 1e-12)),
    ("uniform_point", _uniform(0.3, 0.3)),  # a == b: every value is a
    ("uniform_tiny", _uniform(-1e-40, 1e-40)),  # subnormal bounds: h * 2^-23 is not a normal float32
    ("normal", Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.0, 1.0, -INF, INF))),
    ("normal_scaled", Resolved(T.KIND_NORMAL, (0.0, 1.0, -0.3, 0.02, -INF, INF))),
    ("normal_tiny_std", Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.0, 1e-50, -INF, INF))),
    ("normal_huge_std", Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.0, 1e300, -INF, INF))),
    # float64: bounds that are +-inf as floats but clamp in double (c = 0, h = 1: the "plain" normal's shape)
    ("normal_double_bounds", Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.0, 1e300, -1e301, 1e299))),
    ("trunc_normal", Resolved(T.KIND_NORMAL, _trunc_params(0.0, 1.0, -2.0, 2.0))),
    ("trunc_normal_shifted", Resolved(T.KIND_NORMAL, _trunc_params(0.5, 0.02, 0.47, 0.6))),
    ("dirac_conv", Resolved(T.KIND_DIRAC, iparams=(6 * 9, 9, 2, 4))),  # [4, 6, 3, 3], groups=2
    ("eye", Resolved(T.KIND_DIRAC, iparams=(7, 1, 5, 0))),  # eye_ of [5, 7]
]
SPEC_BY_NAME = dict(SPECS)
NUMELS = [0, 1, 3, 4, 5, 7, 13, 16, 17, 63, 64, 65, 101, 1009, 65537, 1_000_003]
SHARDS = [
    ShardMap(),
    ShardMap(base=3),  # one run, unaligned start
    ShardMap(base=2**33 + 1),  # quad counter past 2^32
    ShardMap(base=5, row_len=7, row_stride=13),  # Shard(1)-like: short runs, unaligned everywhere
    ShardMap(base=1030, row_len=1001, row_stride=4099),
    ShardMap(base=2**31 - 2, row_len=64, row_stride=2**20 + 1),
]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(_INT_VIEW[t.dtype])


def run_both(rows, dtype: torch.dtype, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Fill ``rows`` with the op and with the reference; outputs start as different garbage."""
    table, params = build_tables(rows, dtype)
    outs = [torch.full((n,), 7.0, dtype=dtype) for n, *_ in rows]
    refs = [torch.full((n,), -9.0, dtype=dtype) for n, *_ in rows]
    torch.ops.fastinit.fill_group(outs, table, params, seed)
    fill_group_reference(refs, table, params, seed)
    return outs, refs


def assert_bitwise(outs, refs, rows) -> None:
    for i, (o, r) in enumerate(zip(outs, refs)):
        if not torch.equal(bits(o), bits(r)):
            bad = (bits(o) != bits(r)).nonzero().flatten()[:5].tolist()
            raise AssertionError(f"row {i} {rows[i][2]} {rows[i][3]} numel {o.numel()}: first bad elements {bad}, "
                                 f"got {o[bad].tolist()} want {r[bad].tolist()}")


PATHS = ["scalar", "avx2", "avx512"]


def cpu_paths() -> list[str]:
    """The SIMD paths this CPU runs (the op's own answer; the scalar path always)."""
    return list(torch.ops.fastinit._cpu_simd_paths()) if _OK else []


@pytest.fixture(params=PATHS)
def cpu_path(request, monkeypatch):
    """Each code path of the CPU kernel, forced with FASTINIT_CPU_SIMD: all must give the reference's bits."""
    if request.param not in cpu_paths():
        pytest.skip(f"this CPU lacks the {request.param} path's features (it runs {cpu_paths()})")
    monkeypatch.setenv("FASTINIT_CPU_SIMD", request.param)
    assert torch.ops.fastinit._cpu_simd_path() == request.param
    return request.param


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", [n for n, _ in SPECS])
def test_every_kind_and_dtype(name, dtype, threads, cpu_path):
    if threads == 2 and cpu_path != cpu_paths()[-1]:
        pytest.skip("threading is covered on the best path; the others with 1 thread")
    rng = random.Random(hash((name, str(dtype))) & 0xFFFF)
    res = SPEC_BY_NAME[name]
    rows = [(n, rng.getrandbits(64), res, rng.choice(SHARDS)) for n in NUMELS[:-1]]
    rows.append((NUMELS[-1], rng.getrandbits(64), res, ShardMap(base=rng.randrange(4))))
    seed = T.to_signed64(rng.getrandbits(64) | (1 << 63))  # high bit set: a negative int64
    outs, refs = run_both(rows, dtype, seed)
    assert_bitwise(outs, refs, rows)


# DIRAC divisors the kernels divide by with a multiply (csrc/fastinit_stream.h FastDiv): 1, powers of two, 2^k +- 1,
# primes, > 2^32 and 2^62 + 1, at global indices up to ~2^63 (a shard's BASE), so every magic-number case is hit.
DIVISORS = [1, 2, 3, 7, 8, 9, 641, 2**16 + 1, 2**31 - 1, 2**31, 2**32 + 15, 10**12 + 39, 2**62 + 1]


@pytest.mark.parametrize("base", [0, 2**32 - 5, 2**50 + 3, 2**62 + 11, 2**63 - 6000])  # last index < 2^63
def test_dirac_divisions_exact(base):
    """DIRAC at huge indices with awkward divisors, bitwise equal to the reference's int64 // and %."""
    rng = random.Random(base)
    rows = []
    for inner in DIVISORS:
        spatial = rng.choice([d for d in DIVISORS if d <= inner])
        group = rng.choice(DIVISORS)
        # Centres that sometimes hit: the reference's own index decomposition of a nearby index.
        g = base + rng.randrange(200)
        center = (g % inner) % spatial if rng.random() < 0.7 else rng.randrange(spatial)
        rows.append((500, 0, Resolved(T.KIND_DIRAC, iparams=(inner, spatial, group, center)),
                     ShardMap(base=base, row_len=7, row_stride=11) if rng.random() < 0.5 else ShardMap(base=base)))
    outs, refs = run_both(rows, torch.float32, 0)
    assert_bitwise(outs, refs, rows)
    assert sum(int(o.sum()) for o in outs) > 0, "no element hit: the test would not see a wrong 1"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("trial", range(4))
def test_random_groups(trial, dtype, threads, cpu_path):
    """Random compositions: many kinds, sizes and shard maps in one call, in random order."""
    rng = random.Random(1000 + trial)
    rows = []
    for _ in range(rng.randrange(1, 40)):
        n = rng.choice(NUMELS[:-1] + [rng.randrange(0, 200_000) for _ in range(3)])
        shard = rng.choice(SHARDS + [ShardMap(base=rng.randrange(2**40), row_len=rng.randrange(1, 300),
                                              row_stride=rng.randrange(300, 5000))])
        rows.append((n, rng.getrandbits(64), rng.choice(SPECS)[1], shard))
    outs, refs = run_both(rows, dtype, T.to_signed64(rng.getrandbits(64)))
    assert_bitwise(outs, refs, rows)


def test_group_composition_and_order_do_not_matter(threads):
    rng = random.Random(7)
    rows = [(rng.choice([1, 5, 4099, 70_001, 300_000]), rng.getrandbits(64), rng.choice(SPECS)[1],
             rng.choice(SHARDS)) for _ in range(25)]
    seed = -123456789
    together, _ = run_both(rows, torch.float32, seed)
    assert_bitwise(together, _, rows)
    perm = list(range(len(rows)))
    rng.shuffle(perm)
    shuffled, _ = run_both([rows[i] for i in perm], torch.float32, seed)
    for k, i in enumerate(perm):
        assert torch.equal(bits(shuffled[k]), bits(together[i]))
    for i, row in enumerate(rows):
        table, params = build_tables([row], torch.float32)
        alone = [torch.empty(row[0])]
        torch.ops.fastinit.fill_group(alone, table, params, seed)
        assert torch.equal(bits(alone[0]), bits(together[i]))


def test_shard_equals_slice_of_full_tensor():
    """A Shard(1) block of a [64, 1000] tensor is the same slice of the unsharded tensor's values."""
    res = SPEC_BY_NAME["normal"]
    key, seed = 0xFEDCBA9876543210, 99
    full = torch.empty(64, 1000)
    table, params = build_tables([(full.numel(), key, res, ShardMap())])
    torch.ops.fastinit.fill_group([full], table, params, seed)
    block = torch.empty(64, 250)
    table, params = build_tables([(block.numel(), key, res, ShardMap(base=501, row_len=250, row_stride=1000))])
    torch.ops.fastinit.fill_group([block], table, params, seed)
    assert torch.equal(bits(block), bits(full[:, 501:751].contiguous()))


@pytest.mark.parametrize("name", ["trunc_normal", "normal_scaled", "uniform_sym"])
def test_half_dtypes_differ_only_by_rounding(name):
    """float16 / bfloat16 groups are the float32 values rounded (the uniform: except where they would reach b)."""
    rows = [(100_003, 5, SPEC_BY_NAME[name], ShardMap())]
    table, params = build_tables(rows, torch.float32)
    f = torch.empty(100_003)
    torch.ops.fastinit.fill_group([f], table, params, 1)
    for dtype in (torch.float16, torch.bfloat16):
        table, params = build_tables(rows, dtype)
        o = torch.empty(100_003, dtype=dtype)
        torch.ops.fastinit.fill_group([o], table, params, 1)
        want = f.to(dtype)
        if name.startswith("uniform"):  # torch's range is [dtype(a), dtype(b)): the largest value below dtype(b)
            b = torch.tensor(rows[0][2].params[T.P_HIGH], dtype=torch.float64).to(dtype)
            want = torch.minimum(want, torch.nextafter(b, torch.tensor(-INF, dtype=dtype)))
        assert torch.equal(bits(o), bits(want))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("a,b", [(0.0, 1.0), (1.0, 1.0000001), (0.1, 0.1 + 1e-12), (-3.0, -2.9999999999),
                                 (-1e-3, 1e-3), (5.0, 5.0), (-65504.0, 65504.0)])
def test_uniform_stays_in_torch_range(a, b, dtype, cpu_path):
    """Every value lies in torch's [dtype(a), dtype(b)) (or is dtype(a) when that range is empty), in every dtype."""
    rows = [(40_000, 11, _uniform(a, b), ShardMap(base=1))]
    outs, refs = run_both(rows, dtype, 3)
    assert_bitwise(outs, refs, rows)
    o = outs[0].double()
    lo = torch.tensor(a, dtype=torch.float64).to(dtype).double().item()
    hi = torch.tensor(b, dtype=torch.float64).to(dtype).double().item()
    assert o.min().item() >= lo
    assert o.max().item() < hi or (o.max().item() == lo and hi <= lo)
    if dtype == torch.float64 and b > a:
        assert o.unique().numel() > 1000  # float64 parameters honoured: not a handful of float32 steps


@pytest.mark.parametrize("std", [1e-50, 1e-30, 1e300, 3.0])
def test_float64_normal_honours_float64_parameters(std, cpu_path):
    """float64 groups scale and shift z in double: std 1e-50 is not 0, std 1e300 is not inf (contract v2)."""
    rows = [(20_000, 2, Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.5 * std, std, -INF, INF)), ShardMap())]
    outs, refs = run_both(rows, torch.float64, 9)
    assert_bitwise(outs, refs, rows)
    o = outs[0]
    assert torch.isfinite(o).all() and (o != 0).all()
    z = (o - 0.5 * std) / std
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05
    # z itself is the float32 sequence: the same words give the float32 group's standard normal
    f = torch.empty(20_000)
    table, params = build_tables([(20_000, 2, SPEC_BY_NAME["normal"], ShardMap())], torch.float32)
    torch.ops.fastinit.fill_group([f], table, params, 9)
    assert torch.allclose(z, f.double(), rtol=1e-12, atol=1e-12)


def test_constants_round_like_fill():
    for dtype in DTYPES:
        for v in (0.1, 1 / 3, -2.7182818284590455, 65519.0, 65520.0, 1e-8, 3.4e38):
            table, params = build_tables([(9, 0, Resolved(T.KIND_CONSTANT, (v, 0, 0, 0, 0, 0)), ShardMap())])
            o = torch.empty(9, dtype=dtype)
            torch.ops.fastinit.fill_group([o], table, params, 0)
            want = torch.tensor([v] * 9, dtype=torch.float64)
            want = (want.float() if dtype in (torch.float16, torch.bfloat16) else want).to(dtype)
            assert torch.equal(bits(o), bits(want)), (dtype, v)


def test_known_answers_through_the_op():
    """A few frozen values of tests/test_stream.py, produced by the op instead of the reference."""
    cases = [(0, 0, 4, "0x1.ea3090p+0"), (2**64 - 1, 2**64 - 1, 123456789, "0x1.5dc63ep+0"),
             (42, 0xDEADBEEFCAFEF00D, 2**40 + 3, "0x1.e1ec5ap+0")]
    for seed, key, index, z in cases:
        table, params = build_tables([(1, key, SPEC_BY_NAME["normal"], ShardMap(base=index))])
        o = torch.empty(1)
        torch.ops.fastinit.fill_group([o], table, params, T.to_signed64(seed))
        assert o.item() == float.fromhex(z)


def test_streaming_store_path(cpu_path):
    """Groups of >= 32 MB use non-temporal stores: check random tensors of such a group bit for bit."""
    randoms = [(n, 2 + i, SPEC_BY_NAME[k], ShardMap(base=b))
               for i, (n, k, b) in enumerate([(100_000, "normal", 0), (65_537, "uniform_asym", 1),
                                              (4096, "trunc_normal", 2), (50_001, "uniform_sym", 0),
                                              (70_000, "uniform_01", 0)])]
    for dtype in DTYPES:
        bulk = (34 * 2**20) // torch.empty((), dtype=dtype).element_size()  # cheap bulk that makes the group big
        rows = [(bulk, 1, SPEC_BY_NAME["const_1/3"], ShardMap())] + randoms
        outs, refs = run_both(rows, dtype, -1)
        assert sum(o.numel() * o.element_size() for o in outs) >= 32 * 2**20
        assert_bitwise(outs, refs, rows)


def test_extension_is_built_with_openmp():
    """at::parallel_for is an inline OpenMP template: built without -fopenmp, the op silently uses one core.

    Checked on the binary (it must call into libgomp) rather than by timing, which a busy machine would make flaky.
    """
    import fastinit._C as ext

    with open(ext.__file__, "rb") as f:
        assert b"GOMP_parallel" in f.read(), "fastinit._C was compiled without -fopenmp"


def test_empty_group_and_zero_element_tensors():
    table, params = build_tables([])
    torch.ops.fastinit.fill_group([], table, params, 0)
    rows = [(0, 1, SPEC_BY_NAME["normal"], ShardMap()), (5, 2, SPEC_BY_NAME["uniform_sym"], ShardMap()),
            (0, 3, SPEC_BY_NAME["eye"], ShardMap())]
    outs, refs = run_both(rows, torch.float32, 3)
    assert_bitwise(outs, refs, rows)


def test_opcheck():
    rows = [(1000, 1, SPEC_BY_NAME["normal"], ShardMap()), (37, 2, SPEC_BY_NAME["uniform_asym"], ShardMap(base=3)),
            (12, 3, SPEC_BY_NAME["const_1/3"], ShardMap())]
    table, params = build_tables(rows)
    outs = [torch.empty(n) for n, *_ in rows]
    torch.library.opcheck(torch.ops.fastinit.fill_group.default, (outs, table, params, 5))


def _good():
    table, params = build_tables([(10, 1, SPEC_BY_NAME["normal"], ShardMap()),
                                  (4, 2, SPEC_BY_NAME["uniform_sym"], ShardMap())])
    return [torch.empty(10), torch.empty(4)], table, params


def _bad_cases():
    def mutate(fn):
        outs, table, params = _good()
        fn(outs, table, params)
        return outs, table, params

    def set_cell(col, value):
        return lambda o, t, p: t.__setitem__((0, col), value)

    yield "table must be an int64", lambda: (_good()[0], _good()[1].int(), _good()[2])
    yield "table must be an int64", lambda: (_good()[0], _good()[1][:, :9].contiguous(), _good()[2])
    yield "params must be a float64", lambda: (_good()[0], _good()[1], _good()[2].float())
    yield "params must be a float64", lambda: (_good()[0], _good()[1], _good()[2][:1].contiguous())
    yield "output tensors for a table of 2 rows", lambda: (_good()[0][:1], _good()[1], _good()[2])
    yield "must be contiguous", lambda: ([torch.empty(20)[::2], torch.empty(4)], _good()[1], _good()[2])
    yield "a group has one dtype", lambda: ([torch.empty(10), torch.empty(4, dtype=torch.float64)],
                                            _good()[1], _good()[2])
    yield "outputs must be float32, float16, bfloat16 or float64", lambda: (
        [torch.empty(10, dtype=torch.int32), torch.empty(4, dtype=torch.int32)], _good()[1], _good()[2])
    yield "says NUMEL 10 but outs\\[0\\] has 11", lambda: ([torch.empty(11), torch.empty(4)], _good()[1], _good()[2])
    yield "unknown KIND 7", lambda: mutate(set_cell(T.KIND, 7))
    yield "bad index map", lambda: mutate(set_cell(T.ROW_LEN, 0))
    yield "bad index map", lambda: mutate(set_cell(T.BASE, -4))
    yield "DIRAC_INNER", lambda: mutate(lambda o, t, p: (t.__setitem__((0, T.KIND), T.KIND_DIRAC),
                                                         t.__setitem__((0, T.DIRAC_INNER), 0)))


@pytest.mark.parametrize("message,make", list(_bad_cases()), ids=[m for m, _ in _bad_cases()])
def test_bad_inputs_raise(message, make):
    outs, table, params = make()
    with pytest.raises(RuntimeError, match=message):
        torch.ops.fastinit.fill_group(outs, table, params, 0)


def test_non_contiguous_table_raises():
    outs, table, params = _good()
    with pytest.raises(RuntimeError, match="table must be a contiguous CPU tensor"):
        torch.ops.fastinit.fill_group(outs, table.t().contiguous().t(), params, 0)


def test_backend_objects():
    from fastinit.backends.cpu import CpuBackend

    b = CpuBackend()
    assert b.unavailable() is None
    assert b.reasons(torch.device("cpu"), torch.bfloat16, T.KIND_NORMAL) == []
    assert any("CPU tensors only" in r for r in b.reasons(torch.device("meta"), torch.float32, T.KIND_NORMAL))
    outs, table, params = _good()
    b.fill(outs, table, params, 3)
    refs = [torch.empty_like(o) for o in outs]
    fill_group_reference(refs, table, params, 3)
    assert all(torch.equal(bits(o), bits(r)) for o, r in zip(outs, refs))


@pytest.mark.slow
def test_bfloat16_tensor_past_2_pow_31_elements():
    """One bfloat16 tensor of more than 2^31 elements (4.3 GB): spot-check values past 2^31."""
    n = 2**31 + 2**20 + 3
    key, seed = 0x0123456789ABCDEF, -42
    res = SPEC_BY_NAME["uniform_asym"]
    table, params = build_tables([(n, key, res, ShardMap(base=1))], torch.bfloat16)
    try:
        out = torch.empty(n, dtype=torch.bfloat16)
    except RuntimeError as exc:  # not enough memory on this machine
        pytest.skip(f"cannot allocate 4.3 GB: {exc}")
    try:
        torch.ops.fastinit.fill_group([out], table, params, seed)
        local = torch.tensor([0, 1, 2, 3, 2**31 - 2, 2**31 - 1, 2**31, 2**31 + 1, 2**31 + 2, 2**31 + 3,
                              2**31 + 123_457, 2**31 + 2**20, n - 4, n - 3, n - 2, n - 1]
                             + random.Random(0).sample(range(2**31, n), 20), dtype=torch.int64)
        glob = local + 1  # BASE = 1
        words = stream.raw_bits(glob, key, T.to_signed64(seed) & (2**64 - 1))
        want = stream.transform(T.KIND_UNIFORM, stream.symmetric_uniform(words), params[0].tolist()).to(torch.bfloat16)
        assert torch.equal(bits(out[local]), bits(want))
    finally:
        del out
        gc.collect()


# ---- the SIMD paths' exact shortcuts (csrc/fill_cpu_simd.h, csrc/fill_cpu_avx512.cpp), checked exhaustively ----

ALL_M = torch.arange(2**23, dtype=torch.int64)  # every 23-bit m = word >> 9


def test_symmetric_integer_trick_is_exact_for_every_m():
    """(x | 0x1FF) ^ 0x800000FF as an int32 is (2m + 1 - 2^23) * 2^8 for every m = x >> 9 (and any low bits)."""
    low = torch.randint(0, 512, (2**23,), generator=torch.Generator().manual_seed(0))
    x = (ALL_M << 9) | low
    t = ((x | 0x1FF) ^ 0x800000FF) & 0xFFFFFFFF
    t = torch.where(t >= 2**31, t - 2**32, t)  # as int32
    assert torch.equal(t, (2 * ALL_M + 1 - 2**23) * 256)
    # and the AVX2 path's form, (x >> 8 | 1) - 2^23
    assert torch.equal(((x >> 8) | 1) - 2**23, 2 * ALL_M + 1 - 2**23)


@pytest.mark.parametrize("h", [1.0, 0.0360843912, 1 / 3, 2.0**-95, 3.4e38, 1.5, 7e-20, 0.1])
def test_uniform_scale_fold_is_exact_for_every_m(h):
    """round(cvt(n * 2^8) * (h * 2^-31)) == round(round(n * 2^-23) * h) for all 2^23 n where the host allows the
    fold (h * 2^-31 an exact normal float32): the AVX-512 uniform's one-multiply form is the reference's value."""
    hf = torch.tensor(h, dtype=torch.float32)
    hs = hf * 2.0**-31
    assert hs.item() * 2.0**31 == hf.item() and hs.item() >= 2.0**-126, "the host would not fold this h"
    n = 2 * ALL_M + 1 - 2**23
    ref = (n.float() * 2.0**-23) * hf
    got = (n * 256).float() * hs
    assert torch.equal(got.view(torch.int32), ref.view(torch.int32))


def _avx512_or_skip(native: bool) -> None:
    if "avx512" not in cpu_paths():
        pytest.skip(f"this CPU lacks the avx512 path's features (it runs {cpu_paths()})")
    flags = open("/proc/cpuinfo").read() if native else ""
    if native and "avx512_bf16" not in flags:
        pytest.skip("this CPU lacks avx512_bf16 (vcvtne2ps2bf16)")


@pytest.mark.parametrize("native", [False, True], ids=["integer", "vcvtne2ps2bf16"])
@pytest.mark.parametrize("exponent", [0, 1, 100, 127, 200, 253, 254, 255])  # denormals, normals, max, inf/NaN
def test_avx512_bfloat16_rounding_is_torchs_for_every_mantissa(exponent, native):
    """The AVX-512 bfloat16 store's rounding, for all 2^23 mantissas of an exponent and both signs, equals torch's
    float32 -> bfloat16 cast (round to nearest even, canonical NaN), whether vcvtne2ps2bf16 or integer rounding."""
    _avx512_or_skip(native)
    mant = torch.arange(2**23, dtype=torch.int64)
    sign = (mant * 2654435761 >> 7) & 1  # both signs, mixed within every vector
    b = (sign << 31) | (exponent << 23) | mant
    x = torch.where(b >= 2**31, b - 2**32, b).to(torch.int32).view(torch.float32)
    got = torch.ops.fastinit._avx512_bf16_round(x, native)
    want = x.to(torch.bfloat16)
    nan = torch.isnan(x)
    assert torch.equal(got[~nan].view(torch.int16), want[~nan].view(torch.int16))
    assert (got[nan].view(torch.int16) == 0x7FC0).all()  # c10::BFloat16's NaN, as the scalar path


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_runs_across_a_2_pow_32_quad_boundary(dtype, cpu_path):
    """Quad counters whose high word changes inside a SIMD step (global index 2^34) take the general Philox path."""
    rows = [(4096 + k, 9 + k, SPEC_BY_NAME[name], ShardMap(base=2**34 - 2048 - k))
            for k, name in enumerate(["uniform_sym", "uniform_asym", "normal", "trunc_normal", "uniform_01"])]
    outs, refs = run_both(rows, dtype, 77)
    assert_bitwise(outs, refs, rows)


def test_forcing_a_path_the_cpu_lacks_or_an_unknown_one_raises(monkeypatch):
    outs, table, params = _good()
    monkeypatch.setenv("FASTINIT_CPU_SIMD", "avx9")
    with pytest.raises(RuntimeError, match="FASTINIT_CPU_SIMD=avx9 is not one of"):
        torch.ops.fastinit.fill_group(outs, table, params, 0)
    for path in PATHS:
        if path not in cpu_paths():
            monkeypatch.setenv("FASTINIT_CPU_SIMD", path)
            with pytest.raises(RuntimeError, match="this CPU lacks"):
                torch.ops.fastinit.fill_group(outs, table, params, 0)
    monkeypatch.delenv("FASTINIT_CPU_SIMD")
    assert torch.ops.fastinit._cpu_simd_path() == cpu_paths()[-1]  # unset: the best this CPU has


def test_a_bad_path_is_refused_while_planning_before_any_group_is_written(monkeypatch):
    # the orthogonal weight is written by torch (its own group, first in the plan), the other by the CPU kernel
    import fastinit
    from fastinit import specs as S

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    before = [p.detach().clone() for p in model.parameters()]
    rules = fastinit.Rules([("0.weight", S.Orthogonal()), ("*", S.Normal(0.0, 1.0))])
    monkeypatch.setenv("FASTINIT_CPU_SIMD", "avx9")
    with pytest.raises(RuntimeError, match="FASTINIT_CPU_SIMD=avx9 is not one of"):
        fastinit.apply(model, rules, seed=1)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_backends_report_the_simd_path(monkeypatch):
    from fastinit.backends import cpu_simd

    info = cpu_simd()
    assert info["path"] == cpu_paths()[-1] and info["paths"] == cpu_paths()
    if "avx512" in info["paths"]:
        assert {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(info["flags"])
    monkeypatch.setenv("FASTINIT_CPU_SIMD", "scalar")
    assert cpu_simd()["path"] == "scalar"


def test_cli_backends_names_the_simd_path():
    """``python -m fastinit backends`` says which SIMD path the CPU kernel runs, and a forced one is followed."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "FASTINIT_CPU_SIMD": "scalar", "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-m", "fastinit", "backends"], env=env, capture_output=True, text=True,
                         timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("cpu SIMD path:")]
    assert line and line[0].startswith("cpu SIMD path: scalar (this CPU runs: " + ", ".join(cpu_paths()))


def _clamp_sides(res: Resolved, dtype: torch.dtype) -> tuple[bool, bool]:
    """Which sides of the uniform's clamp the kernel needs (fill_cpu_simd.h's uniform_low/high_is_identity, computed
    here in float32 from the table row): (lo needed, hi needed)."""
    import numpy as np

    _, params = build_tables([(1, 0, res, ShardMap())], dtype)
    c, h, lo, hi = (np.float32(x) for x in params[0, [T.P_CENTER, T.P_HALF_WIDTH, T.P_LOW, T.P_HIGH]].tolist())
    ends = [np.float32(np.float32(np.float32(s) * h) + c) for s in (-1 + 2.0**-32, 1 - 2.0**-32)]
    return (not all(v >= lo for v in ends), not all(v <= hi for v in ends))


def _clamped(c: float, h: float, lo: float, hi: float) -> Resolved:
    """Values c + s * h clamped to [lo, hi): a row whose clamp changes many values (plans never make one)."""
    return Resolved(T.KIND_UNIFORM, (c, h, 0, 0, lo, hi))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("sides,res,constructed", [
    ((False, False), _clamped(0.0, 1.0, -2.0, 2.0), True), ((True, False), _clamped(0.0, 1.0, -0.5, 2.0), True),
    ((False, True), _clamped(0.0, 1.0, -2.0, 0.5), True), ((True, True), _clamped(0.25, 1.0, -0.5, 0.5), True),
    ((True, True), _uniform(-0.0442, 0.0442), False), ((False, True), _uniform(-1.0, 1.0), False),
], ids=["neither", "lo", "hi", "both", "both (a model's)", "hi (a model's)"])
def test_each_side_of_the_uniform_clamp(dtype, sides, res, constructed, cpu_path):
    """The AVX-512 path clamps a side only where some value can cross it: each combination gives the reference's
    bits, and where a side clamps, values sit on that bound."""
    if constructed or dtype != torch.float32:  # (float32 U(a, b) rows need no clamp or one, by their rounding)
        assert _clamp_sides(res, dtype) == sides
    rows = [(65_537, 5, res, ShardMap()), (4099, 6, res, ShardMap(base=2**32 - 7))]
    outs, refs = run_both(rows, dtype, 11)
    assert_bitwise(outs, refs, rows)
    if constructed:  # an eighth or more of the values are clamped on each side that clamps, none on the others
        _, params = build_tables([(1, 0, res, ShardMap())], dtype)
        lo, hi = params[0, T.P_LOW].item(), params[0, T.P_HIGH].item()
        o = outs[0].double()
        assert ((o == lo).double().mean() > 0.1) == sides[0] and ((o == hi).double().mean() > 0.1) == sides[1]
