"""Stack traffic in the hot loops of the CPU kernel's SIMD paths, read from the built extension with objdump.

Script: ``python bench/hot_loop_spills.py [--so fastinit/_C*.so] [--match quads_avx2If] [--all]`` prints, for each
step function whose mangled name contains ``--match`` (default: the float32 AVX2 and AVX-512 steps), the
instructions, stack stores, stack loads (memory operands included) and output stores of its hot loop: the body of
the function's longest backward jump, where the SAME_HI branch's common case runs (the other branch sits
out of line). Elements per step: 16 * NV (AVX2) or 32 * NV (AVX-512), NV the template's third argument.
"""

from __future__ import annotations

import argparse
import glob
import re
import subprocess
import sys
from pathlib import Path

_JUMP = re.compile(r"\tj\w+\s+([0-9a-f]+) <")
_STACK = re.compile(r"\((%rsp|%rbp)\)")
_VSTORE = re.compile(r"\tvmov\w*\s+%[xyz]mm\d+,.*\(")
_STEP = re.compile(r"quads(?:_avx2|512)I(.+?)Li(\d+)ELi(\d+)ELb([01])E")


def functions(so: str, match: str) -> dict[str, list[str]]:
    """Disassembly lines of each function whose symbol contains ``match``."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", so], capture_output=True, text=True,
                          check=True).stdout
    out: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        if line.endswith(">:"):
            sym = line[line.index("<") + 1:-2]
            name = sym if match in sym else None
            if name:
                out[name] = []
        elif name and line.strip():
            out[name].append(line)
        elif not line.strip():
            name = None
    return out


def hot_loop(lines: list[str]) -> list[str]:
    """The instructions between the target of the function's longest backward jump and that jump."""
    addr = [int(line.split(":")[0], 16) for line in lines]
    best = None
    for a, line in zip(addr, lines):
        m = _JUMP.search(line)
        if m and int(m.group(1), 16) < a and (best is None or a - int(m.group(1), 16) > best[1] - best[0]):
            best = (int(m.group(1), 16), a)
    if best is None:
        return []
    return [line for a, line in zip(addr, lines) if best[0] <= a <= best[1]]


def count(body: list[str]) -> dict[str, int]:
    """Instructions, stack stores, other stack accesses and non-stack vector stores of a loop body."""
    stack_stores = sum(1 for b in body if _VSTORE.search(b) and _STACK.search(b) and b.rstrip().endswith(")"))
    stack_refs = sum(1 for b in body if _STACK.search(b))
    outputs = sum(1 for b in body if _VSTORE.search(b) and not _STACK.search(b) and b.rstrip().endswith(")"))
    return {"instructions": len(body), "stack_stores": stack_stores, "stack_loads": stack_refs - stack_stores,
            "output_stores": outputs}


def main(argv: list[str] | None = None) -> int:
    """Print one row per step function."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--so", default=None, help="the built extension (default: fastinit/_C*.so of this checkout)")
    ap.add_argument("--match", default=None, help="substring of the mangled step names (default: float32 steps)")
    args = ap.parse_args(argv)
    so = args.so or next(iter(glob.glob(str(root / "fastinit" / "_C*.so"))), None)
    if so is None:
        print("no built extension: run scripts/setup.sh first", file=sys.stderr)
        return 1
    matches = [args.match] if args.match else ["quads_avx2If", "quads512If"]
    print(f"# {so}")
    print("| step function (T, variant, NV, streaming) | elements/step | instructions | stack stores | stack loads "
          "| output stores |")
    print("|---|---:|---:|---:|---:|---:|")
    for match in matches:
        for name, lines in sorted(functions(so, match).items()):
            m = _STEP.search(name)
            if not m:
                continue
            per = (16 if "avx2" in name else 32) * int(m.group(3))
            c = count(hot_loop(lines))
            path = "avx2" if "avx2" in name else "avx512"
            label = f"{path} {m.group(1)} V={m.group(2)} NV={m.group(3)} NT={m.group(4)}"
            print(f"| {label} | {per} | {c['instructions']} | {c['stack_stores']} | {c['stack_loads']} | "
                  f"{c['output_stores']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
