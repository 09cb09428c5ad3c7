"""Host-side cost of fastinit.apply: the time a GPU run cannot hide behind its kernel.

    python bench/bench_host_overhead.py [--repeats 21] [--json PATH]

Builds LLaMA-7B's and GPT-2-XL's module layouts (same modules and tensor count) at width 64, so that filling
costs next to nothing and what is timed is the Python around it: recording each module's init, planning,
building the tables and one launch per group. Rows: ``fastinit.apply`` with the default policy and with the
gpt2 preset, and the ``torch.nn.init`` loop (``model.apply(reset_parameters)``, what construction runs).
Times are CPU time of this process (``time.process_time``: steadier than wall time on a shared machine),
median and minimum over ``--repeats``, one thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import fastinit  # noqa: E402
from fastinit.models import GPT2, GPT2Config, Llama, LlamaConfig  # noqa: E402
from fastinit.policy import default_init  # noqa: E402

LAYOUTS = {
    "llama-7b": lambda: Llama(LlamaConfig(d_model=64, d_ff=128, vocab=256, n_heads=4)),
    "gpt2-xl": lambda: GPT2(GPT2Config(d_model=64, vocab=256, ctx=64)),
}


def _times(fn, repeats: int) -> list[float]:
    fn()  # warm: caches, first-call imports
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def run(repeats: int) -> dict:
    """Every row for every layout."""
    torch.set_num_threads(1)
    res = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "torch": torch.__version__}, "repeats": repeats, "layouts": []}
    for name, make in LAYOUTS.items():
        model = make()
        n = sum(1 for _ in model.parameters())
        rows = {
            "fastinit.apply (default)": _times(lambda m=model: fastinit.apply(m, seed=1), repeats),
            "fastinit.apply (gpt2 preset)": _times(lambda m=model: fastinit.apply(m, "gpt2", seed=1), repeats),
            "torch.nn.init loop": _times(lambda m=model: m.apply(default_init), repeats),
        }
        res["layouts"].append({"layout": name, "tensors": n, "rows": {
            k: {"median_ms": 1e3 * statistics.median(v), "min_ms": 1e3 * min(v),
                "us_per_tensor": 1e6 * statistics.median(v) / n} for k, v in rows.items()}})
    return res


def table(res: dict) -> str:
    """The results as a Markdown table."""
    lines = ["| layout (width 64) | tensors | row | median ms | min ms | µs / tensor |",
             "|---|---:|---|---:|---:|---:|"]
    for lay in res["layouts"]:
        for row, r in lay["rows"].items():
            lines.append(f"| {lay['layout']} | {lay['tensors']} | {row} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
                         f"{r['us_per_tensor']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run and print the table; ``--json`` also writes the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    res = run(args.repeats)
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
