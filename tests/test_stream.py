"""Known-answer tests of the stream: Philox, the uniform mapping, the float32 log/erfinv transform."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from fastinit import stream as S

INF = float("inf")
NORMAL = [0.0, 1.0, 0.0, 1.0, -INF, INF]


def _t(*v):
    return [torch.tensor([x], dtype=torch.int64) for x in v]


@pytest.mark.parametrize("ctr,key,expected", [
    ((0, 0, 0, 0), (0, 0), "6627e8d5 e169c58d bc57ac4c 9b00dbd8"),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, "408f276d 41c83b0e a20bc7c6 6d5451fd"),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     "d16cfe09 94fdcceb 5001e420 24126ea1"),
])
def test_philox_random123_vectors(ctr, key, expected):
    out = S.philox4x32_10(*_t(*ctr), *key)
    assert " ".join(f"{o.item():08x}" for o in out) == expected


def _philox_numpy(q: int, t: int, s: int) -> list[int]:
    """An independent uint64 implementation to cross-check the int64-split arithmetic."""
    m = np.uint64(0xFFFFFFFF)
    c = [np.uint64(q & 0xFFFFFFFF), np.uint64(q >> 32), np.uint64(t & 0xFFFFFFFF), np.uint64(t >> 32)]
    k0, k1 = np.uint64(s & 0xFFFFFFFF), np.uint64(s >> 32)
    for r in range(10):
        if r:
            k0, k1 = (k0 + np.uint64(0x9E3779B9)) & m, (k1 + np.uint64(0xBB67AE85)) & m
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & m, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & m]
    return [int(x) for x in c]


@pytest.mark.parametrize("index", [0, 5, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 7, 2**40 + 3, 2**62 + 11])
def test_raw_bits_match_independent_philox(index):
    seed, key = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    got = S.raw_bits(torch.tensor([index]), key, seed).item()
    assert got == _philox_numpy(index >> 2, key, seed)[index & 3]


def test_range_equals_per_index():
    start = 2**33 - 3
    idx = torch.arange(start, start + 1001)
    assert torch.equal(S.raw_bits_range(start, 1001, 99, 7), S.raw_bits(idx, 99, 7))


# (seed, key, index, word, u, standard normal): frozen from the reference; every backend must reproduce them.
KNOWN = [
    (0, 0, 0, 0x6627E8D5, "0x1.989fa4p-2", "-0x1.05f49ep-2"),
    (0, 0, 1, 0xE169C58D, "0x1.c2d38ap-1", "0x1.2d769ep+0"),
    (0, 0, 2, 0xBC57AC4C, "0x1.78af5ap-1", "0x1.42a774p-1"),
    (0, 0, 3, 0x9B00DBD8, "0x1.3601b6p-1", "0x1.11fbd0p-2"),
    (0, 0, 4, 0xF8E4CCA4, "0x1.f1c99ap-1", "0x1.ea3090p+0"),
    (1234, 0, 7, 0x147EDD50, "0x1.47edd0p-4", "-0x1.6797fcp+0"),
    (2**64 - 1, 2**64 - 1, 123456789, 0xEA010D4C, "0x1.d4021ap-1", "0x1.5dc63ep+0"),
    (42, 0xDEADBEEFCAFEF00D, 2**32 + 5, 0x220EA74F, "0x1.107538p-3", "-0x1.1cb618p+0"),
    (42, 0xDEADBEEFCAFEF00D, 2**40 + 3, 0xF85993F4, "0x1.f0b326p-1", "0x1.e1ec5ap+0"),
    (7, 1, 2**33 - 1, 0x3E1B938C, "0x1.f0dc98p-3", "-0x1.655804p-1"),
]


@pytest.mark.parametrize("seed,key,index,word,u,z", KNOWN)
def test_known_answer_table(seed, key, index, word, u, z):
    bits = S.raw_bits(torch.tensor([index]), key, seed)
    assert bits.item() == word
    assert S.uniform01(bits).item() == float.fromhex(u)
    assert S.transform(S.KIND_NORMAL, S.symmetric_uniform(bits), NORMAL).item() == float.fromhex(z)
    # u follows from the word alone, exactly
    assert float.fromhex(u) == ((word >> 9) + 0.5) * 2.0**-23


def test_uniform_mapping_is_exact_and_open():
    words = torch.tensor([0, 511, 512, 2**32 - 1, 2**31], dtype=torch.int64)
    u = S.uniform01(words)
    assert u[0].item() == 2.0**-24 and u[3].item() == 1 - 2.0**-24
    assert bool((u > 0).all() and (u < 1).all())
    s = S.symmetric_uniform(words)
    assert torch.equal(s, (2 * u.double() - 1).float())  # 2u - 1 is exact


def test_log_f32_accuracy():
    y = torch.cat([torch.logspace(-7, 0, 20001, dtype=torch.float32), torch.tensor([2.0**-22, 0.5, 1.0])])
    got = S.log_f32(y).double()
    ref = torch.log(y.double())
    assert float((got - ref).abs().max()) < 2e-7 * 16  # a few float32 ulps of |log y| <= 16


def test_erfinv_accuracy_and_symmetry():
    m = torch.arange(0, 2**23, 97, dtype=torch.int64)
    x = ((m * 2 + 1) - 2**23).to(torch.float32) * 2.0**-23
    got = S.erfinv_f32(x).double()
    ref = torch.from_numpy(scipy.special.erfinv(x.double().numpy()))
    rel = ((got - ref).abs() / ref.abs().clamp_min(1e-30)).max().item()
    assert rel < 5e-6
    assert torch.equal(S.erfinv_f32(-x), -S.erfinv_f32(x))  # exactly odd


def test_normal_is_the_inverse_cdf_of_u():
    bits = S.raw_bits_range(0, 200_000, 3, 5)
    u = S.uniform01(bits).double().numpy()
    z = S.transform(S.KIND_NORMAL, S.symmetric_uniform(bits), NORMAL).double().numpy()
    ref = scipy.stats.norm.ppf(u)
    assert np.max(np.abs(z - ref) / np.maximum(1.0, np.abs(ref))) < 5e-6
    assert np.abs(z).max() < 5.42  # Φ^-1(2^-24) = -5.419...: no outliers


def test_extreme_words_give_finite_tails():
    words = torch.tensor([0, 2**32 - 1], dtype=torch.int64)
    z = S.transform(S.KIND_NORMAL, S.symmetric_uniform(words), NORMAL)
    assert torch.isfinite(z).all()
    assert z[0].item() == -z[1].item()
    assert math.isclose(z[1].item(), scipy.stats.norm.ppf(1 - 2.0**-24), rel_tol=1e-5)


# ---- stream contract v2 (docs/STREAM.md sections 3 and 5): per-dtype parameters, the uniform's clamp, float64 ----

def _uniform_res(a: float, b: float):
    from fastinit import tables as T

    return T.Resolved(T.KIND_UNIFORM, ((a + b) / 2, (b - a) / 2, 0.0, 0.0, a, b))


def _values(res, dtype, n=5, key=0xDEADBEEFCAFEF00D, seed=42, base=2**40 + 3):
    from fastinit import tables as T
    from fastinit.reference import fill_group_reference

    table, params = T.build_tables([(n, key, res, T.ShardMap(base=base))], dtype)
    out = torch.empty(n, dtype=dtype)
    fill_group_reference([out], table, params, seed)
    return out


V2_KNOWN = [  # (name, resolved params, dtype, values at global 2^40+3 .. 2^40+7, key 0xDEADBEEFCAFEF00D, seed 42)
    ("float64 U(0.1, 0.1 + 1e-12)", "uniform", (0.1, 0.1 + 1e-12), torch.float64,
     ["0x1.99999999aaaabp-4", "0x1.99999999a20f9p-4", "0x1.999999999f0ecp-4", "0x1.99999999a5465p-4",
      "0x1.99999999a1351p-4"]),
    ("float64 N(0, 1e-50)", "normal", (0.0, 1e-50), torch.float64,
     ["0x1.c2c5b1296d42dp-166", "-0x1.6e7c25cb3c8c0p-171", "-0x1.da4ff032edea2p-168", "0x1.948d9631fd4fep-168",
      "-0x1.46120da5fdfa2p-169"]),
    ("float64 N(0, 1e300)", "normal", (0.0, 1e300), torch.float64,
     ["0x1.67cf244c9c29bp+997", "-0x1.2487d0701abb0p+992", "-0x1.7a99540bdfbabp+995", "0x1.42eaaee186aaap+995",
      "-0x1.04457fa4b6cfcp+994"]),
    ("float32 U(1, 1.0000001)", "uniform", (1.0, 1.0000001), torch.float32, ["0x1.0000000000000p+0"] * 5),
    ("bfloat16 U(0, 1)", "uniform", (0.0, 1.0), torch.bfloat16,
     ["0x1.f000000000000p-1", "0x1.ec00000000000p-2", "0x1.3e00000000000p-2", "0x1.5400000000000p-1",
      "0x1.ba00000000000p-2"]),
    ("float16 U(0, 1)", "uniform", (0.0, 1.0), torch.float16,
     ["0x1.f0c0000000000p-1", "0x1.ec80000000000p-2", "0x1.3dc0000000000p-2", "0x1.53c0000000000p-1",
      "0x1.bac0000000000p-2"]),
]


@pytest.mark.parametrize("name,kind,args,dtype,want", V2_KNOWN, ids=[k[0] for k in V2_KNOWN])
def test_contract_v2_known_answers(name, kind, args, dtype, want):
    from fastinit import tables as T

    res = _uniform_res(*args) if kind == "uniform" else T.Resolved(T.KIND_NORMAL, (0.0, 1.0, *args, -INF, INF))
    got = _values(res, dtype)
    assert [v.hex() for v in got.double().tolist()] == [float.fromhex(w).hex() for w in want]


def test_float64_normal_is_float32_z_scaled_in_double():
    """float64 N(mean, std): z is the float32 sequence (its known answers), then z * std + mean in double."""
    from fastinit import tables as T

    for seed, key, index, _word, _u, z in KNOWN:
        res = T.Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.25, 1e-40, -INF, INF))
        got = _values(res, torch.float64, n=1, key=key, seed=seed, base=index).item()
        assert got == float.fromhex(z) * 1e-40 + 0.25


def test_uniform_clamps_to_torch_half_open_range_at_the_extreme_words():
    """Words 0 and 2^32 - 1 give the extreme s: U(0, 1) must stay in [0, 1) after rounding to every dtype."""
    from fastinit import tables as T

    words = torch.tensor([0, 2**32 - 1], dtype=torch.int64)
    s = S.symmetric_uniform(words)
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        _, params = T.build_tables([(2, 0, _uniform_res(0.0, 1.0), T.ShardMap())], dtype)
        v = S.transform(S.KIND_UNIFORM, s, params[0].tolist(), dtype).to(dtype)
        assert v[0].item() > 0 and v[1].item() < 1, (dtype, v)
    # bfloat16: 1 - 2^-24 would round to 1.0; the clamp makes it the largest bfloat16 below 1
    _, params = T.build_tables([(2, 0, _uniform_res(0.0, 1.0), T.ShardMap())], torch.bfloat16)
    assert S.transform(S.KIND_UNIFORM, s, params[0].tolist())[1].item() == 1 - 2.0**-8


def test_float32_uniform_known_answers_unchanged():
    """Contract v2 left ordinary float32 uniforms alone: U(-1, 1) is still s itself (tests above pin s)."""
    from fastinit import tables as T

    bits = S.raw_bits_range(0, 4, 0, 0)
    _, params = T.build_tables([(4, 0, _uniform_res(-1.0, 1.0), T.ShardMap())], torch.float32)
    v = S.transform(S.KIND_UNIFORM, S.symmetric_uniform(bits), params[0].tolist())
    assert v.tolist() == [(2 * (w >> 9) + 1 - 2**23) * 2.0**-23 for w in (0x6627E8D5, 0xE169C58D, 0xBC57AC4C,
                                                                          0x9B00DBD8)]
