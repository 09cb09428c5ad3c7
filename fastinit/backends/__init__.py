"""Backend registry: which backends exist, which are available here, and the ``auto`` priority."""

from __future__ import annotations

import importlib

import torch

from .base import Backend

# name -> (module, class); imported lazily so a missing extension or Triton never breaks import.
_REGISTRY = {
    "triton": ("fastinit.backends.triton", "TritonBackend"),
    "cuda": ("fastinit.backends.cuda", "CudaBackend"),
    "cpu": ("fastinit.backends.cpu", "CpuBackend"),
    "reference": ("fastinit.backends.reference", "ReferenceBackend"),
    "torch": ("fastinit.backends.torch_backend", "TorchBackend"),
}

# ``auto``'s priority per device type: the first that takes a tensor wins.
AUTO_ORDER = {
    "cuda": ("triton", "cuda", "reference"),
    "cpu": ("cpu", "reference"),
}
AUTO_ORDER_OTHER = ("reference",)

_instances: dict[str, Backend] = {}


class _Missing(Backend):
    """Stands in for a backend whose module could not be imported."""

    def __init__(self, name: str, why: str):
        self.name = name
        self._why = why

    def unavailable(self):
        return self._why


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (one of :data:`NAMES`)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(_REGISTRY)} or 'auto'")
    if name not in _instances:
        module, cls = _REGISTRY[name]
        try:
            _instances[name] = getattr(importlib.import_module(module), cls)()
        except Exception as exc:  # an optional backend must never break the others
            _instances[name] = _Missing(name, f"{module} failed to import: {type(exc).__name__}: {exc}")
    return _instances[name]


NAMES = tuple(_REGISTRY)


def auto_order(device: torch.device) -> tuple[str, ...]:
    """Backends ``auto`` tries for tensors on ``device``, fastest first."""
    return AUTO_ORDER.get(device.type, AUTO_ORDER_OTHER)


def backends() -> dict[str, str | None]:
    """Each backend's name mapped to None when it is available here, else the reason it is not."""
    return {name: get_backend(name).unavailable() for name in _REGISTRY}


def cpu_simd() -> dict:
    """Which SIMD path the ``cpu`` backend's kernel runs here (see :func:`fastinit.backends.cpu.simd_info`)."""
    from .cpu import simd_info

    return simd_info()
