"""The warnings of ``torch.nn.init``, emitted where torch's own point: same file, line, module and registry.

Where a warning points decides what ``warnings.filterwarnings(module=...)`` silences and how often the default
action shows it (once per location and module registry), so fastinit's warnings must point where eager code's do:

- "Initializing zero-element tensors is a no-op" (``stacklevel=2`` in ``kaiming_*_``): at the code that called the
  init function. Whatever fastinit puts between that code and the warning (a recording stand-in, a trampoline,
  ``__torch_function__`` dispatch) is skipped by walking out to the frame that runs the init function itself.
- "mean is more than 2 std from [a, b]" (``stacklevel=2`` in ``_no_grad_trunc_normal_``): inside torch's
  ``trunc_normal_``, at its call of that helper, in ``torch.nn.init``'s registry; emitted with
  ``warnings.warn_explicit`` at that site, whichever path (recorded, constructed, the drop-in) computed it.
- torch's own code, where fastinit runs it for a call (an untracked tensor, another thread, a meta tensor): run
  through :func:`run_as_called_from`, a one-line frame with the caller's file, line and globals, so torch's
  ``stacklevel=2`` lands on what eager code's lands on.
"""

from __future__ import annotations

import dis
import functools
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import torch

#: torch's own code of trunc_normal_ (taken at import, before any recording swaps it)
_TRUNC_NORMAL_CODE: types.CodeType = torch.nn.init.trunc_normal_.__code__

#: code objects whose frames are "the init function" for a warning's stacklevel: torch's own, the recording
#: trampolines and the stand-ins (each registered by the module that makes them: :func:`register_init_frame`)
_INIT_FRAME_CODES: set[types.CodeType] = set()


def register_init_frame(code: types.CodeType) -> None:
    """Count frames running ``code`` as a ``torch.nn.init`` function's own frame (torch's, or a stand-in for one)."""
    _INIT_FRAME_CODES.add(code)


def _init_frame(f: types.FrameType | None) -> tuple[types.FrameType | None, int]:
    """The innermost frame at or above ``f`` running an init function, and how many frames up it is."""
    up = 0
    while f is not None and f.f_code not in _INIT_FRAME_CODES:
        f = f.f_back
        up += 1
    return f, up


def init_caller() -> types.FrameType | None:
    """The frame of the code that called the innermost running ``torch.nn.init`` function (or its stand-in); None
    when none is running."""
    f, _ = _init_frame(sys._getframe(1))
    return f.f_back if f is not None else None


def caller_stacklevel() -> int:
    """The ``stacklevel``, counted from the caller of this function, of the code that called the innermost running
    ``torch.nn.init`` function (or its stand-in): where torch's ``stacklevel=2`` warnings point. 1 (the caller)
    when no such frame is running (a direct call of fastinit's own function)."""
    f, up = _init_frame(sys._getframe(1))
    return up + 2 if f is not None else 1


_PROXY_CODE: types.CodeType = next(
    c for c in compile("def _called_here(fn, args, kwargs): return fn(*args, **kwargs)\n", "<fastinit>",
                       "exec").co_consts if isinstance(c, types.CodeType))


@functools.lru_cache(maxsize=1024)
def _proxy_code(filename: str, line: int) -> types.CodeType:
    return _PROXY_CODE.replace(co_filename=filename, co_firstlineno=line)


def run_as_called_from(frame: types.FrameType | None, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` as if ``frame`` called it on its current line: a warning ``fn`` emits with
    ``stacklevel=2`` names that file and line, in that frame's module and registry. A plain call for ``frame``
    None."""
    if frame is None or not frame.f_lineno:
        return fn(*args, **kwargs)
    proxy = types.FunctionType(_proxy_code(frame.f_code.co_filename, frame.f_lineno), frame.f_globals)
    return proxy(fn, args, kwargs)


def called_from_init_caller(fn: Callable) -> Callable:
    """``fn`` (torch's own code of an init function) run as if called by the code that called the running init
    function or stand-in, if any: what fastinit runs eagerly for a call then warns as that call would."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return run_as_called_from(init_caller(), fn, *args, **kwargs)

    return call


@functools.cache
def _trunc_normal_site() -> tuple[str, int] | None:
    """(file, line) of torch's ``trunc_normal_`` calling ``_no_grad_trunc_normal_``: the frame its warning names."""
    seen_helper, line = False, None
    for ins in dis.get_instructions(_TRUNC_NORMAL_CODE):
        pos = getattr(ins, "positions", None)  # Python >= 3.11; before, the line an instruction starts
        if pos is not None and pos.lineno:
            line = pos.lineno
        elif type(ins.starts_line) is int:
            line = ins.starts_line
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and ins.argval == "_no_grad_trunc_normal_":
            seen_helper = True
        elif seen_helper and ins.opname.startswith("CALL") and line is not None:
            return _TRUNC_NORMAL_CODE.co_filename, line
    return None


def warn_trunc_normal_far_mean(stacklevel: int) -> None:
    """torch's warning for a ``trunc_normal_`` mean more than 2 std outside [a, b], at torch's own site.

    ``stacklevel`` (from the caller) is used only if torch's ``trunc_normal_`` no longer calls its helper directly.
    """
    message = ("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
               "The distribution of values may be incorrect.")
    site = _trunc_normal_site()
    if site is None:
        warnings.warn(message, stacklevel=stacklevel + 1)
        return
    module = vars(torch.nn.init)
    warnings.warn_explicit(message, UserWarning, site[0], site[1], module=module["__name__"],
                           registry=module.setdefault("__warningregistry__", {}), module_globals=module)
