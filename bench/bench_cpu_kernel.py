"""pytest-benchmark suite of the CPU kernel against torch's own fills on the same ~256 MB group.

Run: ``pytest bench/bench_cpu_kernel.py --benchmark-only`` (add ``--benchmark-columns=min,mean,ops``).
Each case reports GB/s in ``extra_info``; ``fill_`` is the write-bandwidth ceiling, ``uniform_``/``normal_``
are torch's single-threaded mt19937 generators. Threads 1 and 2 are separate cases.
"""

from __future__ import annotations

import math

import pytest
import torch

from fastinit import _ext
from fastinit import tables as T
from fastinit.tables import Resolved, ShardMap, build_tables

_OK, _WHY = _ext.load()
pytestmark = pytest.mark.skipif(not _OK, reason=f"CPU extension not built: {_WHY}")

GROUP_BYTES = 256 * 2**20
# A model-like group: one big embedding-sized tensor plus many layer-sized ones and small biases.
SHAPES_FRACTIONS = [0.25] + [0.75 / 48] * 48

KINDS = {
    "uniform": Resolved(T.KIND_UNIFORM, (0.0, 0.0360843912, 0, 0, 0, 0)),
    "normal": Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.0, 0.02, -math.inf, math.inf)),
}


def _group(dtype: torch.dtype) -> list[torch.Tensor]:
    numel = GROUP_BYTES // torch.empty((), dtype=dtype).element_size()
    outs = [torch.empty(int(numel * f), dtype=dtype) for f in SHAPES_FRACTIONS]
    outs += [torch.empty(1600, dtype=dtype) for _ in range(96)]  # biases
    for o in outs:
        o.fill_(0)  # fault the pages in once, so no case pays for first touch
    return outs


_GROUPS: dict[torch.dtype, list[torch.Tensor]] = {}


def group(dtype: torch.dtype) -> list[torch.Tensor]:
    if dtype not in _GROUPS:
        _GROUPS[dtype] = _group(dtype)
    return _GROUPS[dtype]


def _report(benchmark, outs: list[torch.Tensor]) -> None:
    nbytes = sum(o.numel() * o.element_size() for o in outs)
    benchmark.extra_info["bytes"] = nbytes
    if benchmark.stats is not None:
        benchmark.extra_info["GB/s (min time)"] = round(nbytes / benchmark.stats.stats.min / 1e9, 2)


DTYPES = [torch.float32, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", list(KINDS))
def test_fastinit_fill_group(benchmark, kind, dtype, threads):
    outs = group(dtype)
    table, params = build_tables([(o.numel(), i, KINDS[kind], ShardMap()) for i, o in enumerate(outs)])
    benchmark.pedantic(torch.ops.fastinit.fill_group, args=(outs, table, params, 1234), rounds=5, warmup_rounds=1)
    _report(benchmark, outs)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["uniform_", "normal_"])
def test_torch_random(benchmark, op, dtype, threads):
    outs = group(dtype)

    def run():
        for o in outs:
            getattr(o, op)()

    benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    _report(benchmark, outs)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_torch_fill(benchmark, dtype, threads):
    outs = group(dtype)

    def run():
        for o in outs:
            o.fill_(0.5)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    _report(benchmark, outs)
