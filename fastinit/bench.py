"""``python -m fastinit bench``: initialize a large model with fastinit and with torch.nn.init, one table.

Rows (same tensors, same run): fastinit through each requested backend, the ``torch.nn.init`` loop
with the same policy, and ``fill_`` over the same tensors (the write-bandwidth ceiling). First-touch
page faults are a separate row: every timed row runs on memory that is already allocated and touched.
The rows are interleaved (each repeat times every row once); times are medians over ``--repeats``, and
the speed-up column also gives the lowest and highest ratio within one repeat.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import torch

from .apply import apply, last_report
from .backends import backends as list_backends
from .backends import cpu_simd
from .models import MODELS, build, describe
from .policy import default_init

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal or ``force``)."""

    def __init__(self, total: int, force: bool = False):
        self.total, self.done = total, 0
        self.on = force or sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def step(self, label: str) -> None:
        self.done += 1
        if self.on:
            width = 30
            filled = int(width * self.done / self.total)
            elapsed = time.perf_counter() - self.t0
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                             f"{elapsed:6.1f}s {label:<40}")
            sys.stderr.flush()
            if self.done == self.total:
                sys.stderr.write("\n")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(model_name: str = "gpt2-xl", policy: str = "default", dtype: str = "float32", device: str = "cpu",
        backends: tuple[str, ...] = ("auto",), repeats: int = 3, threads: int | None = None,
        progress: bool = False) -> dict:
    """Run the benchmark and return its results (also what ``--json`` writes)."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    rss0 = _rss_bytes()
    model = build(model_name, device=dev, dtype=_DTYPES[dtype])
    tensors = [p.detach() for p in model.parameters()]
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    rows: list[dict] = []

    steps = 1 + repeats * (len(backends) + 2)
    bar = Progress(steps, force=progress)

    def fill_all():
        for t in tensors:
            t.fill_(0.5)

    rows.append({"name": "first touch (fill_ on fresh memory)", "times": [_time(fill_all, dev)]})
    bar.step("first touch")

    def torch_loop():
        if policy == "default":
            model.apply(default_init)  # exactly what construction runs, module by module
        else:
            apply(model, policy, seed=0, backend="torch")

    picked = {}
    backends = tuple(dict.fromkeys(backends))  # a backend named twice is one row (rows are keyed by name)
    cases = [(f"fastinit ({b})", (lambda b=b: apply(model, policy, seed=1234, backend=b))) for b in backends]
    cases += [("torch.nn.init loop", torch_loop), ("fill_ (bandwidth ceiling)", fill_all)]
    # Rows interleaved, one of each per repeat: on a shared machine the speed drifts over a run, and a row
    # timed in one stretch against a row timed in another would carry that drift into their ratio.
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(repeats):
        for name, fn in cases:
            times[name].append(_time(fn, dev))
            bar.step(name)
            if name.startswith("fastinit"):
                picked[name] = sorted({g.backend for g in last_report()})
    rows += [{"name": name, "times": times[name]} for name, _ in cases]

    for r in rows:
        r["median_s"] = statistics.median(r["times"])
        r["GB_per_s"] = nbytes / r["median_s"] / 1e9
        if r["name"] in picked:
            r["backends_used"] = picked[r["name"]]
    base = next(r for r in rows if r["name"] == "torch.nn.init loop")
    ceil = next(r for r in rows if r["name"].startswith("fill_"))["median_s"]
    for r in rows:
        r["speedup_vs_torch"] = base["median_s"] / r["median_s"]
        r["fraction_of_fill"] = ceil / r["median_s"]
        if r["name"] in times:  # the ratio within each repeat (same stretch of time), lowest and highest
            paired = [t / x for t, x in zip(base["times"], r["times"])]
            r["speedup_vs_torch_per_repeat"] = [min(paired), max(paired)]
    peak = _rss_bytes()
    copy_bw = _copy_bandwidth(dev) if dev.type == "cuda" else None
    return {
        "device_copy_GB_per_s": copy_bw,
        "model": model_name, "summary": describe(model), "policy": policy, "dtype": dtype, "device": str(dev),
        "threads": torch.get_num_threads(), "repeats": repeats, "param_bytes": nbytes, "rows": rows,
        "peak_rss_bytes": peak, "rss_before_bytes": rss0,
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None},
        "backends_available": list_backends(),
        "cpu_simd": cpu_simd(),
    }


def _copy_bandwidth(dev: torch.device, nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """The device's copy bandwidth (bytes read + written per second), median of ``repeats``."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    times = [_time(lambda: dst.copy_(src), dev) for _ in range(repeats)]
    return 2 * nbytes / statistics.median(times) / 1e9


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return platform.processor()


def format_table(res: dict) -> str:
    """The results as a Markdown table with a header line naming the machine."""
    lines = [
        f"# fastinit bench: {res['model']} ({res['summary']}), {res['dtype']}, policy={res['policy']}, "
        f"device={res['device']}, threads={res['threads']}, median of {res['repeats']}",
        f"# machine: {res['machine']['processor']}; torch {res['machine']['torch']}"
        + (f"; GPU {res['machine']['gpu']}" if res['machine']['gpu'] else ""),
        f"# cpu kernel SIMD path: {res['cpu_simd']['path']} (CPU flags: {' '.join(res['cpu_simd']['flags'])})",
        "",
        "| row | time (s) | GB/s | × torch.nn.init (per repeat) | × fill_ bandwidth |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        name = r["name"] + (f" → {', '.join(r['backends_used'])}" if r.get("backends_used") else "")
        spread = r.get("speedup_vs_torch_per_repeat")
        ratio = f"{r['speedup_vs_torch']:.2f}" + (f" ({spread[0]:.1f}–{spread[1]:.1f})" if spread and
                                                     r["name"] != "torch.nn.init loop" else "")
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['GB_per_s']:.2f} | {ratio} | {r['fraction_of_fill']:.2f} |")
    extra = res["peak_rss_bytes"] - res["rss_before_bytes"] - res["param_bytes"]
    if res.get("device_copy_GB_per_s"):
        lines += ["", f"device copy bandwidth (read + write): {res['device_copy_GB_per_s']:.0f} GB/s"]
    if res["device"] == "cpu":
        lines += ["", f"peak RSS {res['peak_rss_bytes'] / 1e9:.2f} GB for {res['param_bytes'] / 1e9:.2f} GB of "
                      f"parameters (+{max(extra, 0) / 1e6:.0f} MB over parameters and start-up)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of ``python -m fastinit bench``."""
    ap = argparse.ArgumentParser(prog="python -m fastinit bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gpt2-xl", choices=sorted(MODELS))
    ap.add_argument("--small", action="store_true", help="shorthand for --model gpt2 (124 M parameters)")
    ap.add_argument("--policy", default="default",
                    help="'default' or a preset name (gpt2, bert, vit, xavier_uniform...)")
    ap.add_argument("--dtype", default="float32", choices=sorted(_DTYPES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default=None,
                    help="comma-separated backends for fastinit rows (auto, cpu, reference, triton, cuda); default "
                         "'auto', or on a CUDA device every available one of 'triton,cuda'")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results as JSON to this path")
    ap.add_argument("--markdown", default=None, help="also write the table to this path")
    ap.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    args = ap.parse_args(argv)
    model = "gpt2" if args.small else args.model
    if args.backend is None:
        gpu = [b for b in ("triton", "cuda") if list_backends()[b] is None]
        args.backend = ",".join(gpu) if torch.device(args.device).type == "cuda" and gpu else "auto"
    res = run(model, args.policy, args.dtype, args.device, tuple(args.backend.split(",")), args.repeats, args.threads,
              args.progress)
    table = format_table(res)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0
