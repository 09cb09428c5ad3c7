"""The CPU kernel against ``fill_`` (the write-bandwidth ceiling) on the same memory, in the same run.

Script: ``python bench/bench_cpu_kernel.py [--numel 134217728] [--threads 2] [--repeats 7] [--paths best|all|avx2,...]``
prints the CPU model, its SIMD flags and the kernel path that ran, then per (path, kind, dtype) the median time
of ``fastinit::fill_group`` and of ``fill_`` on the same touched tensor, GB/s and their ratio.

pytest-benchmark suite: ``pytest bench/bench_cpu_kernel.py --benchmark-only`` (add
``--benchmark-columns=min,mean,ops``) over a ~256 MB model-like group; each case reports GB/s and the SIMD path
in ``extra_info``; ``uniform_``/``normal_`` are torch's single-threaded mt19937 generators.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch

if __name__ == "__main__":  # run as a script from anywhere: import this checkout's fastinit
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastinit import _ext  # noqa: E402
from fastinit import tables as T  # noqa: E402
from fastinit.backends.cpu import simd_info  # noqa: E402
from fastinit.tables import Resolved, ShardMap, build_tables  # noqa: E402

_OK, _WHY = _ext.load()
pytestmark = pytest.mark.skipif(not _OK, reason=f"CPU extension not built: {_WHY}")

GROUP_BYTES = 256 * 2**20
# A model-like group: one big embedding-sized tensor plus many layer-sized ones and small biases.
SHAPES_FRACTIONS = [0.25] + [0.75 / 48] * 48

BOUND = 1 / math.sqrt(768)  # kaiming_uniform(a=sqrt(5)) of a 768-wide layer
KINDS = {
    "uniform": Resolved(T.KIND_UNIFORM, (0.0, BOUND, 0, 0, -BOUND, BOUND)),
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
    benchmark.extra_info["simd_path"] = simd_info()["path"]
    if benchmark.stats is not None:
        benchmark.extra_info["GB/s (min time)"] = round(nbytes / benchmark.stats.stats.min / 1e9, 2)


DTYPES = [torch.float32, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", list(KINDS))
def test_fastinit_fill_group(benchmark, kind, dtype, threads):
    outs = group(dtype)
    table, params = build_tables([(o.numel(), i, KINDS[kind], ShardMap()) for i, o in enumerate(outs)], dtype)
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


# ---- script: one tensor, fastinit against fill_ in the same run -------------------------------------------------


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _paths(arg: str, info: dict) -> list[str]:
    if arg == "best":
        return [info["paths"][-1]]
    if arg == "all":
        return list(info["paths"])
    want = arg.split(",")
    missing = [p for p in want if p not in info["paths"]]
    if missing:
        raise SystemExit(f"this CPU cannot run {missing} (it runs {info['paths']})")
    return want


def _rows(dtype: torch.dtype, args, info: dict) -> None:
    """Table rows of one dtype: each path and kind against fill_ on the same tensor."""
    out = torch.empty(args.numel, dtype=dtype)
    out.fill_(0)  # fault the pages in: neither side pays for first touch
    nbytes = out.numel() * out.element_size()
    name = str(dtype).replace("torch.", "")
    for path in _paths(args.paths, info):
        os.environ["FASTINIT_CPU_SIMD"] = path
        ran = torch.ops.fastinit._cpu_simd_path()
        for kind in args.kinds.split(","):
            table, params = build_tables([(out.numel(), 1, KINDS[kind], ShardMap())], dtype)
            t_fi = _median_time(lambda t=table, p=params: torch.ops.fastinit.fill_group([out], t, p, 1234),
                                args.repeats)
            t_fill = _median_time(lambda: out.fill_(0.5), args.repeats)
            print(f"| {ran} | {kind} | {name} | {t_fi * 1e3:.1f} | {t_fill * 1e3:.1f} | {nbytes / t_fi / 1e9:.2f} | "
                  f"{nbytes / t_fill / 1e9:.2f} | {out.numel() / t_fi / 1e9:.2f} | {t_fill / t_fi:.3f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--numel", type=int, default=1 << 27, help="elements of the one tensor (default 2^27)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--paths", default="best", help="best, all, or a comma list of scalar/avx2/avx512")
    ap.add_argument("--kinds", default="uniform,normal")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    args = ap.parse_args(argv)
    ok, why = _ext.load()
    if not ok:
        raise SystemExit(f"CPU extension not built: {why}")
    if args.threads:
        torch.set_num_threads(args.threads)
    info = simd_info()
    print(f"# CPU: {info['cpu']}; SIMD flags: {' '.join(info['flags']) or 'none'}; kernel paths: "
          f"{', '.join(info['paths'])}; threads {torch.get_num_threads()}; torch {torch.__version__}")
    print(f"# one tensor of {args.numel} elements, touched before timing; median of {args.repeats}")
    print("| path | kind | dtype | fastinit ms | fill_ ms | fastinit GB/s | fill_ GB/s | G el/s | x fill_ |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    old = os.environ.get("FASTINIT_CPU_SIMD")
    try:
        for dtype_name in args.dtypes.split(","):
            _rows(getattr(torch, dtype_name), args, info)
    finally:
        if old is None:
            os.environ.pop("FASTINIT_CPU_SIMD", None)
        else:
            os.environ["FASTINIT_CPU_SIMD"] = old
    return 0


if __name__ == "__main__":
    sys.exit(main())
