"""The ``cpu`` backend: the C++ kernel (csrc/fill_cpu.cpp), one multi-threaded call per group."""

from __future__ import annotations

import platform

import torch

from .. import _ext
from .base import Backend


class CpuBackend(Backend):
    """Runs ``torch.ops.fastinit.fill_group`` on CPU tensors (all cores via at::parallel_for)."""

    name = "cpu"
    device_type = "cpu"

    def unavailable(self) -> str | None:
        """None when the compiled extension is loaded, else why it is not."""
        ok, why = _ext.load()
        return None if ok else why

    def reasons(self, device: torch.device, dtype: torch.dtype, kind: int | None) -> list[str]:
        """:meth:`Backend.reasons`; a ``FASTINIT_CPU_SIMD`` that names no path this CPU runs raises here, while the
        plan is validated, not when the group is written (by then another device's group may have been)."""
        why = super().reasons(device, dtype, kind)
        if not why:
            torch.ops.fastinit._cpu_simd_path()  # RuntimeError: the kernel's own message
        return why

    def fill(self, outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
        """Write the group in place (as ``fastinit.reference.fill_group_reference``, bit for bit)."""
        _ext.load()
        torch.ops.fastinit.fill_group(outs, table, params, seed)


# The /proc/cpuinfo flags the kernel's SIMD paths use (avx2 path: avx2 + f16c; avx512 path: f, bw, vl, dq).
SIMD_FLAGS = ("avx2", "f16c", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``platform.processor()`` where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_simd_flags() -> list[str]:
    """Which of :data:`SIMD_FLAGS` this CPU reports (empty where ``/proc/cpuinfo`` is not there)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [flag for flag in SIMD_FLAGS if flag in have]
    except OSError:
        pass
    return []


def simd_info() -> dict:
    """The CPU kernel's SIMD path: ``{"path", "paths", "cpu", "flags"}``.

    ``path`` is what ``fill_group`` runs now (``FASTINIT_CPU_SIMD`` forces scalar / avx2 / avx512; unset, the
    best the CPU has), or ``"unavailable: ..."`` / ``"error: ..."``; ``paths`` every path this CPU can run.
    No torch equivalent (torch's own kernels pick their SIMD level through ATEN_CPU_CAPABILITY).
    """
    ok, why = _ext.load()
    info = {"cpu": cpu_model(), "flags": cpu_simd_flags()}
    if not ok:
        return {"path": f"unavailable: {why}", "paths": [], **info}
    paths = list(torch.ops.fastinit._cpu_simd_paths())
    try:
        path = str(torch.ops.fastinit._cpu_simd_path())
    except RuntimeError as exc:  # FASTINIT_CPU_SIMD asks for a path this CPU lacks, or is not a path name
        path = f"error: {exc}".splitlines()[0]
    return {"path": path, "paths": paths, **info}
