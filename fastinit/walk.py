"""One walk of the module tree per run: ``model.named_modules(remove_duplicate=False)``, shared.

Before any init code runs, a run asks for the model's modules several times: its tracked tensors, the
recorder's slots, the ties, and each module's name for the recorder's scope. Inside :func:`one_walk` the
first of these walks the tree and the others reuse it. The list only holds (name, module) pairs: each
caller still reads the tensors a module holds when it asks, so a stand-in swapped into ``_parameters``
between two callers is seen. Once init code may run (:func:`code_runs`), the module tree may change
(``self.attn = ...``), so every later caller walks again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import nn

_state = threading.local()


@contextlib.contextmanager
def one_walk(model: nn.Module) -> Iterator[None]:
    """While inside, :func:`modules` of ``model`` walks its tree once (until :func:`code_runs`), in this thread."""
    outer = getattr(_state, "run", None)
    _state.run = [model, None]
    try:
        yield
    finally:
        _state.run = outer


def modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``list(model.named_modules(remove_duplicate=False))``, walked once per :func:`one_walk`."""
    run = getattr(_state, "run", None)
    if run is None or run[0] is not model:
        return list(model.named_modules(remove_duplicate=False))
    if run[1] is None:
        run[1] = list(model.named_modules(remove_duplicate=False))
    return run[1]


def code_runs() -> None:
    """Init code is about to run: the module tree may change, so the shared walk is not reused from here on."""
    run = getattr(_state, "run", None)
    if run is not None:
        run[0] = run[1] = None


def _plain_members(model: nn.Module) -> bool:
    cls = type(model)
    return (cls.named_parameters is nn.Module.named_parameters and cls.named_buffers is nn.Module.named_buffers
            and cls._named_members is nn.Module._named_members)


def named_tensors(model: nn.Module) -> tuple[list[tuple[str, torch.Tensor]], list[tuple[str, torch.Tensor]]]:
    """``(list(model.named_parameters()), list(model.named_buffers()))``, from the shared walk where the model's
    class walks its members as ``nn.Module`` does (the first path of a module or tensor held twice, as torch)."""
    if not _plain_members(model):
        return list(model.named_parameters()), list(model.named_buffers())
    params: list[tuple[str, torch.Tensor]] = []
    buffers: list[tuple[str, torch.Tensor]] = []
    seen_modules: set[int] = set()
    seen_params: set[int] = set()
    seen_buffers: set[int] = set()
    for mod_name, module in modules(model):
        if id(module) in seen_modules:  # named_modules() skips a module seen before (and so its subtree)
            continue
        seen_modules.add(id(module))
        prefix = mod_name + "." if mod_name else ""
        for store, seen, out in ((module._parameters, seen_params, params), (module._buffers, seen_buffers, buffers)):
            for k, v in store.items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                out.append((prefix + k, v))
    return params, buffers
