"""Host-side cost of fastinit.apply: the time a GPU run cannot hide behind its kernel.

    python bench/bench_host_overhead.py [--repeats 21] [--json PATH]

Builds LLaMA-7B's and GPT-2-XL's module layouts (same modules and tensor count) at width 64 (LLaMA also with
norms that have their own init code, so that each module's init is recorded rather than known), a
DeepSeek-V3-shaped mixture of experts (61 layers, the first 3 dense, 256 routed experts and one shared expert
per MoE layer, at width 16: about 47,000 tensors) and 5,000 ``nn.Linear(3, 2)`` (10,000 tiny tensors), so that
filling costs next to nothing and what is timed is the Python around it: recording each module's init,
planning, building the tables and one launch per group. Rows: ``fastinit.apply`` with the default policy and with the
gpt2 preset, and the ``torch.nn.init`` loop (``model.apply(reset_parameters)``, what construction runs).
Times are CPU time of this process (``time.process_time``: steadier than wall time on a shared machine),
median and minimum over ``--repeats``, the rows of a layout run in turn, one thread, each row warmed by one
call first. ``--cold`` times instead each row's *first* call in a fresh process (imports done, model built):
what a training script pays once, including fastinit's one-time check of each (class, layout).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import fastinit  # noqa: E402
from fastinit.models import GPT2, GPT2Config, Llama, LlamaConfig  # noqa: E402
from fastinit.policy import default_init  # noqa: E402


class _Expert(nn.Module):
    """A SwiGLU expert: gate, up and down projections without bias (DeepSeek-V3's MLP layout)."""

    def __init__(self, d: int, d_ff: int):
        super().__init__()
        self.gate_proj = nn.Linear(d, d_ff, bias=False)
        self.up_proj = nn.Linear(d, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d, bias=False)


class _MoELayer(nn.Module):
    """Attention projections (MLA-shaped: low-rank q and kv), two RMSNorms and a dense or routed MLP."""

    def __init__(self, d: int, d_ff: int, experts: int, dense: bool):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(d)
        self.q_a_proj, self.q_b_proj = nn.Linear(d, d // 2, bias=False), nn.Linear(d // 2, d, bias=False)
        self.kv_a_proj, self.kv_b_proj = nn.Linear(d, d // 2, bias=False), nn.Linear(d // 2, 2 * d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.post_attention_layernorm = nn.RMSNorm(d)
        if dense:
            self.mlp = _Expert(d, 4 * d_ff)
        else:
            self.gate = nn.Linear(d, experts, bias=False)
            self.experts = nn.ModuleList(_Expert(d, d_ff) for _ in range(experts))
            self.shared_expert = _Expert(d, d_ff)


def deepseek_v3_layout(d: int = 16, d_ff: int = 8, layers: int = 61, dense: int = 3, experts: int = 256) -> nn.Module:
    """DeepSeek-V3's module layout (61 layers, 3 dense, 256 routed + 1 shared expert) at a tiny width."""
    model = nn.Module()
    model.embed_tokens = nn.Embedding(256, d)
    model.layers = nn.ModuleList(_MoELayer(d, d_ff, experts, i < dense) for i in range(layers))
    model.norm = nn.RMSNorm(d)
    model.lm_head = nn.Linear(d, 256, bias=False)
    return model


class OwnRMSNorm(nn.Module):
    """An RMSNorm with its own ``reset_parameters`` (torchtitan's and most frameworks' norms): recorded, not known."""

    def __init__(self, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


def _own_norms(model: nn.Module) -> nn.Module:
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.RMSNorm):
                setattr(module, name, OwnRMSNorm(child.weight.numel()))
    return model


LAYOUTS = {
    "llama-7b": lambda: Llama(LlamaConfig(d_model=64, d_ff=128, vocab=256, n_heads=4)),
    "llama-7b, own RMSNorm": lambda: _own_norms(Llama(LlamaConfig(d_model=64, d_ff=128, vocab=256, n_heads=4))),
    "gpt2-xl": lambda: GPT2(GPT2Config(d_model=64, vocab=256, ctx=64)),
    "deepseek-v3 experts": deepseek_v3_layout,
    "5000 x Linear(3, 2)": lambda: nn.Sequential(*[nn.Linear(3, 2) for _ in range(5000)]),
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _interleaved(fns: dict[str, object], repeats: int) -> dict[str, list[float]]:
    """CPU time of each of ``fns``, run in turn once per repeat (a burst of load on a shared machine hits every row
    alike), after one warm call each (caches, first-call imports, the one-time check of each known layout)."""
    for fn in fns.values():
        fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.process_time()
            fn()
            out[k].append(time.process_time() - t0)
    return out


ROWS = {
    "fastinit.apply (default)": lambda m: fastinit.apply(m, seed=1),
    "fastinit.apply (gpt2 preset)": lambda m: fastinit.apply(m, "gpt2", seed=1),
    "torch.nn.init loop": lambda m: m.apply(default_init),
}


def _first_call(layout: str, row: str) -> float:
    """CPU time of ``row``'s first call on a freshly built ``layout``, in a fresh Python process."""
    code = ("import sys, time, torch; sys.path.insert(0, {bench!r}); torch.set_num_threads(1); "
            "import bench_host_overhead as b; m = b.LAYOUTS[{layout!r}](); t = time.process_time(); "
            "b.ROWS[{row!r}](m); print(time.process_time() - t)")
    out = subprocess.run([sys.executable, "-c", code.format(bench=str(Path(__file__).parent), layout=layout,
                                                               row=row)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def _cold(layout: str, repeats: int) -> dict[str, list[float]]:
    """:func:`_first_call` of every row, in turn, ``repeats`` times (each in its own process)."""
    out: dict[str, list[float]] = {k: [] for k in ROWS}
    for _ in range(repeats):
        for k in ROWS:
            out[k].append(_first_call(layout, k))
    return out


def run(repeats: int, layouts: list[str] | None = None, cold: bool = False) -> dict:
    """Every row for every layout (``cold``: the first call in a fresh process, not a warm process's calls)."""
    torch.set_num_threads(1)
    res = {"machine": {"cpu": _cpu_model(), "platform": platform.platform(), "python": platform.python_version(),
                       "torch": torch.__version__}, "repeats": repeats, "cold": cold, "layouts": []}
    for name, make in LAYOUTS.items():
        if layouts and name not in layouts:
            continue
        model = make()
        n = sum(1 for _ in model.parameters())
        if cold:
            rows = _cold(name, repeats)
        else:
            rows = _interleaved({k: (lambda m=model, f=f: f(m)) for k, f in ROWS.items()}, repeats)
        res["layouts"].append({"layout": name, "tensors": n, "rows": {
            k: {"median_ms": 1e3 * statistics.median(v), "min_ms": 1e3 * min(v),
                "us_per_tensor": 1e6 * statistics.median(v) / n} for k, v in rows.items()}})
    return res


def table(res: dict) -> str:
    """The results as a Markdown table."""
    lines = ["| layout | tensors | row | median ms | min ms | µs / tensor |",
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
    ap.add_argument("--layout", action="append", choices=sorted(LAYOUTS), help="only these layouts (repeatable)")
    ap.add_argument("--cold", action="store_true",
                    help="time each row's first call in a fresh process (what a training script pays once)")
    args = ap.parse_args(argv)
    res = run(args.repeats, args.layout, args.cold)
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
