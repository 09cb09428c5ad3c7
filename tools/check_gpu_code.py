"""Checks on compiled GPU code that need no GPU: what the kernels compile to, read off PTX and ptxas/cuobjdump.

Used by .ci/compile_cuda.sh (the CUDA C++ kernel, compiled by nvcc) and tests/test_gpu_codegen.py (the
Triton kernel, compiled by Triton for sm_90 without a device).

Rules:

- Float arithmetic is exact IEEE with round-to-nearest: every f16/bf16/f32/f64 add, sub, mul, div and sqrt
  carries ``.rn`` (an op without a rounding modifier may be contracted into an FMA by ptxas), and there is no
  ``fma``/``mad``, no ``.ftz`` and no ``.approx`` op. That is what docs/STREAM.md's bitwise contract needs;
  ptxas's own expansion of ``sqrt.rn`` into SASS (Newton steps with FFMA) is correctly rounded, so the check is
  on PTX, not SASS.
- No local memory: no spills and no stack frame (ptxas ``-v``; cuobjdump's STACK / LOCAL bytes; a stack frame
  is a spill or an array the compiler could not keep in registers), and registers x threads
  fit one SM's 64K registers, so that every compiled configuration can launch.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

FLOAT_TYPES = ("f16", "f16x2", "bf16", "bf16x2", "f32", "f64")
# An instruction: optional predicate guard, then opcode.modifiers.type.
_INSTR = re.compile(r"^\s*(?:@!?%\w+\s+)?([a-z][a-z0-9]*)((?:\.[a-z0-9]+)*)\s")
ROUNDED_OPS = {"add", "sub", "mul", "div", "sqrt"}  # must say .rn
FORBIDDEN_OPS = {"fma", "mad", "rcp", "rsqrt", "lg2", "ex2", "sin", "cos", "tanh"}  # fused or approximate
REGISTERS_PER_SM = 65536


def ptx_float_violations(ptx: str) -> list[str]:
    """Lines of ``ptx`` whose float arithmetic could be contracted, flushed or approximated (see module doc)."""
    bad = []
    for lineno, line in enumerate(ptx.splitlines(), 1):
        m = _INSTR.match(line)
        if not m:
            continue
        op, mods = m.group(1), m.group(2).lstrip(".").split(".")
        if not mods or mods[-1] not in FLOAT_TYPES:
            continue
        why = None
        if op in FORBIDDEN_OPS:
            why = "fused or approximate op"
        elif "ftz" in mods or "approx" in mods:
            why = "flushes subnormals or approximates"
        elif op in ROUNDED_OPS and "rn" not in mods:
            why = "no .rn: ptxas may contract it into an FMA"
        if why:
            bad.append(f"{lineno}: {line.strip()}  <- {why}")
    return bad


def ptxas_spills(log: str) -> list[str]:
    """Functions that ptxas ``-v`` reports with local memory: a stack frame or spill stores/loads (N > 0)."""
    bad = []
    func = "?"
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'|Function properties for (\S+)", line)
        if m:
            func = m.group(1) or m.group(2)
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and any(int(x) for x in m.groups()):
            bad.append(f"{func}: {line.strip()}")
    return bad


def cubin_resources(cubin: bytes, cuobjdump: str) -> dict[str, dict[str, int]]:
    """Per-function resource usage (REG, STACK, SHARED, LOCAL, ...) of a cubin, read by ``cuobjdump``."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([cuobjdump, "--dump-resource-usage", f.name], capture_output=True, text=True,
                              check=True).stdout
    out: dict[str, dict[str, int]] = {}
    func = None
    for line in text.splitlines():
        m = re.search(r"Function (\S+):", line)
        if m:
            func = m.group(1)
        elif func and "REG:" in line:
            out[func] = {k: int(v) for k, v in re.findall(r"([A-Z]+(?:\[\d+\])?):(\d+)", line)}
    return out


def resource_violations(res: dict[str, dict[str, int]], threads: int) -> list[str]:
    """Spills (STACK/LOCAL bytes) or more registers than ``threads`` threads can have on one SM."""
    bad = []
    for func, r in res.items():
        if r.get("STACK", 0) or r.get("LOCAL", 0):
            bad.append(f"{func}: spills to local memory (STACK {r.get('STACK')}, LOCAL {r.get('LOCAL')})")
        if r["REG"] * threads > REGISTERS_PER_SM:
            bad.append(f"{func}: {r['REG']} registers x {threads} threads > {REGISTERS_PER_SM}")
    return bad


def main(argv: list[str] | None = None) -> int:
    """CLI for .ci/compile_cuda.sh: check nvcc's kept PTX and its ptxas -v log; exit 1 with the findings."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ptx", nargs="+", type=Path, required=True, help="PTX files (nvcc --keep)")
    ap.add_argument("--ptxas-log", type=Path, help="nvcc/ptxas output with -Xptxas -v")
    args = ap.parse_args(argv)
    problems = []
    n_float = 0
    for p in args.ptx:
        text = p.read_text()
        n_float += sum(1 for line in text.splitlines() if re.search(r"\.rn\.f(32|64)\b", line))
        problems += [f"{p.name}:{v}" for v in ptx_float_violations(text)]
    if n_float == 0:
        problems.append("no .rn float instruction in the PTX at all: wrong files?")
    if args.ptxas_log:
        log = args.ptxas_log.read_text()
        if "bytes spill stores" not in log:
            problems.append(f"{args.ptxas_log}: no ptxas -v resource lines")
        problems += ptxas_spills(log)
    for p in problems:
        print(f"check_gpu_code: {p}", file=sys.stderr)
    print(f"check_gpu_code: {len(args.ptx)} PTX file(s), {n_float} rounded float ops, "
          f"{'FAILED' if problems else 'OK'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
