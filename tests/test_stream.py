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
