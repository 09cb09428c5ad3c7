"""End to end "construct + initialize": eager ``Model()`` (torch's default init) vs ``empty_init`` + ``materialize``.

Each variant runs in a fresh subprocess, so peak RSS (``ru_maxrss``) is its own. Usage::

    python bench/bench_materialize.py                       # GPT-2 small (124 M), quick
    python bench/bench_materialize.py --model gpt2-xl       # ~1.56 B parameters (6.2 GB fp32)
    python bench/bench_materialize.py --model llama-1b      # LLaMA-3.2-1B shapes (1.24 B)
    python bench/bench_materialize.py --model llama-1b --device cuda

On ``cuda`` the eager variant builds on the CPU and moves the model (what ``Model().cuda()`` does);
fastinit materializes straight onto the GPU and never allocates a parameter on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

from fastinit.models import MODELS, construct


def _child(model: str, variant: str, device: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    import fastinit

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.init()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    if variant == "eager":
        m = construct(model)
        if device != "cpu":
            m = m.to(device)
    else:
        with fastinit.empty_init():
            m = construct(model)
        fastinit.materialize(m, device, seed=0)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    nparams = sum(p.numel() for p in m.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in m.parameters())
    backends = sorted({r.backend for r in fastinit.last_report()}) if variant != "eager" else ["torch"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"variant": variant, "seconds": dt, "peak_rss_gb": peak,
            "base_rss_gb": base_rss / 2**20, "params": nparams, "param_gb": nbytes / 1e9, "backends": backends}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gpt2", choices=sorted(MODELS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "UNUSED"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.model, a.child[0], a.device, a.threads)))
        return
    env = dict(os.environ, FASTINIT_QUIET="1")
    res = {}
    for variant in ("eager", "fastinit"):
        out = subprocess.run([sys.executable, __file__, "--model", a.model, "--device", a.device, "--threads",
                              str(a.threads), "--child", variant, "x"], capture_output=True, text=True, env=env)
        if out.returncode:
            sys.exit(out.stderr)
        res[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    e, f = res["eager"], res["fastinit"]
    cpu = platform.processor() or platform.machine()
    print(f"model {a.model}: {f['params'] / 1e9:.3f} B parameters, {f['param_gb']:.2f} GB fp32; device {a.device}; "
          f"{a.threads} threads; torch {torch.__version__}; {cpu}")
    print(f"{'variant':<34} {'time s':>8} {'peak RSS GB':>12} {'RSS - base GB':>14}")
    for name, r in (("eager Model() (torch init)", e), (f"empty_init+materialize ({','.join(f['backends'])})", f)):
        print(f"{name:<34} {r['seconds']:>8.2f} {r['peak_rss_gb']:>12.2f} {r['peak_rss_gb'] - r['base_rss_gb']:>14.2f}")
    print(f"speed-up {e['seconds'] / f['seconds']:.1f}x; peak RSS ratio {e['peak_rss_gb'] / f['peak_rss_gb']:.2f}")


if __name__ == "__main__":
    main()
