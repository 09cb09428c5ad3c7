"""Distribution correctness of every fused distribution in every dtype (KS and chi-square against scipy)."""

import math

import numpy as np
import pytest
import scipy.stats as st
import torch

import fastinit
from fastinit import init

N_ROWS, N_COLS = 400, 250  # 1e5 samples; fan_in 250, fan_out 400
SHAPE = (N_ROWS, N_COLS)
P_MIN = 1e-4


def _xavier_bound():
    return math.sqrt(6.0 / (N_ROWS + N_COLS))


CASES = {
    # name: (fn(tensor, seed), scipy frozen distribution)
    "uniform_sym": (lambda t, s: init.uniform_(t, -1.0, 1.0, seed=s), st.uniform(-1, 2)),
    "uniform_2_5": (lambda t, s: init.uniform_(t, 2.0, 5.0, seed=s), st.uniform(2, 3)),
    "normal": (lambda t, s: init.normal_(t, seed=s), st.norm(0, 1)),
    "normal_3_half": (lambda t, s: init.normal_(t, 3.0, 0.5, seed=s), st.norm(3, 0.5)),
    "trunc_normal": (lambda t, s: init.trunc_normal_(t, seed=s), st.truncnorm(-2, 2)),
    "trunc_normal_asym": (lambda t, s: init.trunc_normal_(t, 0.5, 2.0, -1.0, 3.0, seed=s),
                          st.truncnorm((-1 - 0.5) / 2, (3 - 0.5) / 2, loc=0.5, scale=2.0)),
    "trunc_normal_narrow": (lambda t, s: init.trunc_normal_(t, 0.0, 1.0, 0.5, 0.7, seed=s),
                            st.truncnorm(0.5, 0.7)),
    "xavier_uniform": (lambda t, s: init.xavier_uniform_(t, seed=s), st.uniform(-_xavier_bound(), 2 * _xavier_bound())),
    "xavier_normal": (lambda t, s: init.xavier_normal_(t, gain=2.0, seed=s),
                      st.norm(0, 2.0 * math.sqrt(2.0 / (N_ROWS + N_COLS)))),
    "kaiming_uniform": (lambda t, s: init.kaiming_uniform_(t, a=math.sqrt(5), seed=s),
                        st.uniform(-1 / math.sqrt(N_COLS), 2 / math.sqrt(N_COLS))),
    "kaiming_normal": (lambda t, s: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu", seed=s),
                       st.norm(0, math.sqrt(2.0) / math.sqrt(N_ROWS))),
}
SUPPORT = {"uniform_sym": (-1, 1), "uniform_2_5": (2, 5), "trunc_normal": (-2, 2), "trunc_normal_asym": (-1, 3),
           "trunc_normal_narrow": (0.5, 0.7), "xavier_uniform": (-_xavier_bound(), _xavier_bound()),
           "kaiming_uniform": (-1 / math.sqrt(N_COLS), 1 / math.sqrt(N_COLS))}


def _sample(name, dtype=torch.float32, seed=20261122):
    t = torch.empty(SHAPE, dtype=dtype)
    CASES[name][0](t, seed)
    return t


@pytest.mark.parametrize("name", sorted(CASES))
def test_ks_float32(name):
    x = _sample(name).double().numpy().ravel()
    assert st.kstest(x, CASES[name][1].cdf).pvalue > P_MIN


@pytest.mark.parametrize("name", sorted(CASES))
def test_chi_square_float32(name):
    dist = CASES[name][1]
    x = _sample(name, seed=7).double().numpy().ravel()
    edges = dist.ppf(np.linspace(0, 1, 51))
    counts = np.histogram(x, bins=np.concatenate([[-np.inf], edges[1:-1], [np.inf]]))[0]
    assert st.chisquare(counts).pvalue > P_MIN


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_other_dtypes_are_the_float32_values_rounded(name, dtype):
    ref = _sample(name)
    got = _sample(name, dtype)
    want = ref.to(dtype)
    if name in SUPPORT and "uniform" in name:  # torch's [a, b): a value that rounds up to b is the one below it
        b = torch.tensor(SUPPORT[name][1], dtype=torch.float64).to(dtype)
        want = torch.minimum(want, torch.nextafter(b, torch.tensor(-math.inf, dtype=dtype)))
    assert torch.equal(got, want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_is_the_float32_stream_in_double(name):
    """float64 tensors compute with float64 parameters (contract v2): within float32 rounding of the float32 values."""
    ref = _sample(name).double()
    got = _sample(name, torch.float64)
    assert torch.allclose(got, ref, rtol=2**-22, atol=1e-30)


def _rounding_boundaries(edges: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Smallest real that rounds to each representable edge (the midpoint with its predecessor)."""
    e = torch.tensor(edges, dtype=dtype)
    prev = torch.nextafter(e, torch.full_like(e, -math.inf))
    return ((e.double() + prev.double()) / 2).numpy()


@pytest.mark.parametrize("name", ["normal", "trunc_normal", "kaiming_uniform", "xavier_normal"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_chi_square_low_precision(name, dtype):
    dist = CASES[name][1]
    x = _sample(name, dtype, seed=11).double().numpy().ravel()
    edges = np.unique(torch.tensor(dist.ppf(np.linspace(0.02, 0.98, 25)), dtype=dtype).double().numpy())
    cuts = _rounding_boundaries(edges, dtype)
    probs = np.diff(np.concatenate([[0.0], dist.cdf(cuts), [1.0]]))
    counts = np.histogram(x, bins=np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    keep = probs > 0
    assert st.chisquare(counts[keep], probs[keep] / probs[keep].sum() * counts.sum()).pvalue > P_MIN


@pytest.mark.parametrize("name", sorted(SUPPORT))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_exact_support_bounds(name, dtype):
    lo, hi = SUPPORT[name]
    x = _sample(name, dtype).double()
    assert x.min().item() >= torch.tensor(lo, dtype=dtype).item()
    assert x.max().item() <= torch.tensor(hi, dtype=dtype).item()


@pytest.mark.parametrize("name", ["uniform_sym", "xavier_uniform", "kaiming_uniform"])
def test_symmetric_uniform_is_strictly_inside_in_float32(name):
    lo, hi = SUPPORT[name]
    x = _sample(name)
    bound = np.float32(hi)
    assert x.abs().max().item() < bound and -lo == hi


def test_trunc_normal_never_leaves_bounds_even_when_extreme():
    t = torch.empty(200_000)
    init.trunc_normal_(t, mean=0.0, std=1.0, a=-6.0, b=6.0, seed=3)
    assert t.abs().max().item() <= 6.0 and torch.isfinite(t).all()
    init.trunc_normal_(t, mean=0.0, std=1.0, a=4.0, b=5.0, seed=3)  # far tail: inverse CDF, no rejection loop
    assert t.min().item() >= 4.0 and t.max().item() <= 5.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_moments(name):
    dist = CASES[name][1]
    x = _sample(name, seed=99).double().numpy().ravel()
    n = x.size
    assert abs(x.mean() - dist.mean()) < 6 * dist.std() / math.sqrt(n)
    assert abs(x.var() / dist.var() - 1) < 6 * math.sqrt(2 / n) * 2


def test_no_correlation_across_keys_seeds_or_neighbours():
    n = 200_000
    a, b, c = torch.empty(n), torch.empty(n), torch.empty(n)
    init.normal_(a, seed=5, key=1)
    init.normal_(b, seed=5, key=2)
    init.normal_(c, seed=6, key=1)
    bound = 5 / math.sqrt(n)
    x = a.double().numpy()
    for other in (b.double().numpy(), c.double().numpy()):
        assert abs(np.corrcoef(x, other)[0, 1]) < bound
    for lag in (1, 2, 3, 4, 5, 8):  # lanes of one Philox call and neighbouring calls
        assert abs(np.corrcoef(x[:-lag], x[lag:])[0, 1]) < bound
    lanes = x.reshape(-1, 4)
    corr = np.corrcoef(lanes.T)
    assert np.abs(corr - np.eye(4)).max() < 5 / math.sqrt(n / 4)


def test_keys_and_seeds_change_every_value():
    a, b = torch.empty(1000), torch.empty(1000)
    init.uniform_(a, seed=1, key=fastinit.key_for("x"))
    init.uniform_(b, seed=1, key=fastinit.key_for("y"))
    assert (a != b).float().mean().item() > 0.99
