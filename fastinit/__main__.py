"""``python -m fastinit bench|backends|explain|audit ...`` (see ``python -m fastinit <command> --help``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch the sub-command: ``bench``, ``backends``, ``explain`` or ``audit``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m fastinit bench [--model gpt2-xl] [--dtype float32] [--policy default] [--device cpu]\n"
              "       python -m fastinit backends\n"
              "       python -m fastinit explain [--model gpt2-tiny|module:callable] [--policy default]"
              " [--dtype float32] [--plot FILE --tensors GLOB]\n"
              "       python -m fastinit audit [--model ...] [--policy ...] [--init torch|fastinit] [--plot FILE]")
        return 0
    if argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    if argv[0] in ("explain", "audit"):
        from .inspect_cli import main as inspect_main

        return inspect_main(argv[0], argv[1:])
    if argv[0] == "backends":
        from .backends import backends, cpu_simd

        for name, why in backends().items():
            print(f"{name:10s} {'available' if why is None else 'unavailable: ' + why}")
        simd = cpu_simd()
        print(f"cpu SIMD path: {simd['path']} (this CPU runs: {', '.join(simd['paths']) or 'none'}; "
              f"{simd['cpu']}; flags: {' '.join(simd['flags']) or 'none'})")
        return 0
    print(f"unknown command {argv[0]!r}; try: python -m fastinit --help", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
