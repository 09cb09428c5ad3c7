"""GPU benchmark: initialize LLaMA-7B-shaped and GPT-2-XL-shaped parameter sets, fastinit against torch.

    python bench/bench_gpu.py [--model llama7b|gpt2xl|all] [--dtype bfloat16|float32|float16|float64]

Rows, over the same CUDA tensors in one run: fastinit's ``triton`` backend (one launch per group), the
``cuda`` backend (``torch.ops.fastinit.fill_group``, "n/a" if its CUDA kernel is not built), a
``torch.nn.init`` loop with the same policy, and ``fill_`` over the same tensors (the write-bandwidth
ceiling), plus the device's measured copy bandwidth (a large ``copy_``). Times are CUDA-event medians over
``--repeats``; GB/s counts parameter bytes written. Writes JSON and a Markdown table under bench/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastinit import tables as T  # noqa: E402

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16, "float64": torch.float64}
INF = float("inf")


@dataclass(frozen=True)
class Param:
    """One parameter: its name, shape and initializer ("kaiming_uniform", "normal", "ones", "zeros")."""

    name: str
    shape: tuple[int, ...]
    init: str


def llama7b() -> list[Param]:
    """LLaMA-7B's parameter shapes (untied embedding and lm_head, RMSNorm weights)."""
    d, ff, vocab, layers = 4096, 11008, 32000, 32
    ps = [Param("model.embed_tokens.weight", (vocab, d), "normal")]
    for i in range(layers):
        p = f"model.layers.{i}."
        ps += [Param(p + f"self_attn.{n}_proj.weight", (d, d), "kaiming_uniform") for n in "qkvo"]
        ps += [Param(p + "mlp.gate_proj.weight", (ff, d), "kaiming_uniform"),
               Param(p + "mlp.up_proj.weight", (ff, d), "kaiming_uniform"),
               Param(p + "mlp.down_proj.weight", (d, ff), "kaiming_uniform"),
               Param(p + "input_layernorm.weight", (d,), "ones"),
               Param(p + "post_attention_layernorm.weight", (d,), "ones")]
    ps += [Param("model.norm.weight", (d,), "ones"), Param("lm_head.weight", (vocab, d), "normal")]
    return ps


def gpt2xl() -> list[Param]:
    """GPT-2-XL's parameter shapes (Linear layout: weight (out, in), biases and LayerNorms)."""
    d, layers, vocab, ctx = 1600, 48, 50257, 1024
    ps = [Param("transformer.wte.weight", (vocab, d), "normal"), Param("transformer.wpe.weight", (ctx, d), "normal")]
    for i in range(layers):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            ps += [Param(p + f"{ln}.weight", (d,), "ones"), Param(p + f"{ln}.bias", (d,), "zeros")]
        for name, out_f, in_f in (("attn.c_attn", 3 * d, d), ("attn.c_proj", d, d), ("mlp.c_fc", 4 * d, d),
                                  ("mlp.c_proj", d, 4 * d)):
            ps += [Param(p + f"{name}.weight", (out_f, in_f), "kaiming_uniform"),
                   Param(p + f"{name}.bias", (out_f,), "zeros")]
    ps += [Param("transformer.ln_f.weight", (d,), "ones"), Param("transformer.ln_f.bias", (d,), "zeros")]
    return ps


MODELS = {"llama7b": (llama7b, "bfloat16"), "gpt2xl": (gpt2xl, "float32")}


def key_of(name: str) -> int:
    """The stream key of a parameter: first 8 bytes, little-endian, of blake2b(name, digest_size=8)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def resolve(p: Param) -> T.Resolved:
    """The table row of an initializer, with the bounds torch.nn.init computes (kaiming_uniform with a=sqrt(5))."""
    if p.init == "kaiming_uniform":
        gain = math.sqrt(2.0 / (1 + 5.0))
        bound = math.sqrt(3.0) * gain / math.sqrt(p.shape[1])
        return T.Resolved(T.KIND_UNIFORM, (0.0, bound, 0, 0, -bound, bound))  # exact doubles (stream contract v2)
    if p.init == "normal":
        return T.Resolved(T.KIND_NORMAL, (0.0, 1.0, 0.0, 0.02, -INF, INF))
    return T.Resolved(T.KIND_CONSTANT, (1.0 if p.init == "ones" else 0.0, 0, 0, 0, 0, 0))


def build_group(params: list[Param], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The (table, params) of one group of ``dtype``, built with :func:`fastinit.tables.build_tables`."""
    return T.build_tables([(math.prod(p.shape), key_of(p.name), resolve(p), T.ShardMap()) for p in params], dtype)


def torch_init_loop(tensors: list[torch.Tensor], params: list[Param]) -> None:
    """The same policy through torch.nn.init, one call per tensor."""
    for t, p in zip(tensors, params):
        if p.init == "kaiming_uniform":
            torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5))
        elif p.init == "normal":
            torch.nn.init.normal_(t, 0.0, 0.02)
        elif p.init == "ones":
            torch.nn.init.ones_(t)
        else:
            torch.nn.init.zeros_(t)


def cuda_time_ms(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` on the current stream, measured with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth_gbs(repeats: int) -> float:
    """Device copy bandwidth (bytes read + written per second) of a 2 GiB ``copy_``."""
    n = 1 << 29
    src = torch.empty(n, dtype=torch.float32, device="cuda").fill_(1.0)
    dst = torch.empty_like(src)
    ms = cuda_time_ms(lambda: dst.copy_(src), repeats)
    return 2 * 4 * n / ms / 1e6


def _cuda_op_available() -> bool:
    try:
        from fastinit import _ext

        _ext.load()
    except Exception:  # noqa: BLE001 - the extension is optional
        pass
    return hasattr(torch.ops, "fastinit") and torch._C._dispatch_has_kernel_for_dispatch_key(
        "fastinit::fill_group", "CUDA")


def bench_model(model: str, dtype: torch.dtype, repeats: int, seed: int = 1234) -> dict:
    """All rows for one model: time, GB/s, fraction of the fill_ ceiling and speedup over torch.nn.init."""
    params = MODELS[model][0]()
    tensors = [torch.empty(p.shape, dtype=dtype, device="cuda") for p in params]
    table, tparams = build_group(params, dtype)
    n_elem = sum(t.numel() for t in tensors)
    nbytes = n_elem * tensors[0].element_size()
    rows: dict[str, float | None] = {}

    from fastinit.kernels import triton_fill

    if triton_fill.TRITON_ERROR is None:
        rows["triton"] = cuda_time_ms(
            lambda: torch.ops.fastinit.fill_group_triton(tensors, table, tparams, seed), repeats)
    else:
        rows["triton"] = None
    rows["cuda"] = (cuda_time_ms(lambda: torch.ops.fastinit.fill_group(tensors, table, tparams, seed), repeats)
                    if _cuda_op_available() else None)
    rows["torch.nn.init"] = cuda_time_ms(lambda: torch_init_loop(tensors, params), repeats)
    rows["fill_"] = cuda_time_ms(lambda: [t.fill_(0.5) for t in tensors], repeats)

    best = getattr(getattr(triton_fill, "_fill_group_kernel_tuned", None), "best_config", None)
    result = {"model": model, "dtype": str(dtype).removeprefix("torch."), "tensors": len(tensors),
              "elements": n_elem, "bytes": nbytes, "triton_config": str(best) if best else None, "rows": {}}
    for name, ms in rows.items():
        result["rows"][name] = None if ms is None else {
            "ms": ms,
            "GB/s": nbytes / ms / 1e6,
            "of_fill_ceiling": rows["fill_"] / ms,
            "speedup_vs_torch": rows["torch.nn.init"] / ms,
        }
    tensors.clear()  # free the parameters before the next model
    torch.cuda.empty_cache()
    return result


def markdown(report: dict) -> str:
    """The report as Markdown tables, one per model."""
    lines = [f"# fastinit GPU benchmark: {report['gpu']}", "",
             f"torch {report['torch']}, triton {report['triton']}; copy bandwidth "
             f"{report['copy_GBps']:.0f} GB/s (read + write); median of {report['repeats']} runs.", ""]
    for r in report["models"]:
        lines += [f"## {r['model']} ({r['dtype']}, {r['tensors']} tensors, {r['elements'] / 1e9:.2f} G elements, "
                  f"{r['bytes'] / 2**30:.2f} GiB)", ""]
        if r["triton_config"]:
            lines += [f"Triton autotuned config: `{r['triton_config']}`", ""]
        lines += ["| row | ms | GB/s | of fill_ ceiling | vs torch.nn.init |", "|---|---:|---:|---:|---:|"]
        for name, m in r["rows"].items():
            if m is None:
                lines.append(f"| {name} | n/a | n/a | n/a | n/a |")
            else:
                lines.append(f"| {name} | {m['ms']:.2f} | {m['GB/s']:.0f} | {m['of_fill_ceiling']:.0%} | "
                             f"{m['speedup_vs_torch']:.1f}x |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=[*MODELS, "all"], default="all")
    ap.add_argument("--dtype", choices=list(DTYPES), default=None, help="override the model's dtype")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device (torch.cuda.is_available() is False); nothing to benchmark.")
        return 0
    import fastinit.kernels.triton_fill  # noqa: F401 - registers torch.ops.fastinit.fill_group_triton

    gpu = torch.cuda.get_device_name()
    try:
        import triton

        triton_version = triton.__version__
    except Exception:  # noqa: BLE001
        triton_version = "not importable"
    models = list(MODELS) if args.model == "all" else [args.model]
    copy_gbs = copy_bandwidth_gbs(args.repeats)
    torch.cuda.empty_cache()
    report = {"gpu": gpu, "torch": torch.__version__, "triton": triton_version, "repeats": args.repeats,
              "copy_GBps": copy_gbs, "models": []}
    for m in models:
        dtype = DTYPES[args.dtype or MODELS[m][1]]
        report["models"].append(bench_model(m, dtype, args.repeats))
        print(markdown({**report, "models": report["models"][-1:]}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_" + re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-") + "_" + "-".join(models)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(report))
    print(f"wrote {args.out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
