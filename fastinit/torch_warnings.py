"""The warnings of ``torch.nn.init``, emitted where torch's own point: same file, line, module and registry.

Where a warning points decides what ``warnings.filterwarnings(module=...)`` silences and how often the default
action shows it (once per location and module registry), so fastinit's warnings must point where eager code's do:

- "Initializing zero-element tensors is a no-op" (``stacklevel=2`` in ``kaiming_*_``): at the code that called the
  init function. Whatever fastinit puts between that code and the warning (a recording stand-in, a trampoline,
  ``__torch_function__`` dispatch) is skipped by walking out to the frame that runs the init function itself.
- "mean is more than 2 std from [a, b]" (``stacklevel=2`` in ``_no_grad_trunc_normal_``): inside torch's
  ``trunc_normal_``, at its call of that helper, in ``torch.nn.init``'s registry; emitted with
  ``warnings.warn_explicit`` at that site, whichever path (recorded, constructed, the drop-in) computed it.
"""

from __future__ import annotations

import dis
import functools
import sys
import types
import warnings

import torch

from .intercept import TORCH_CODE, TRAMPOLINE_CODES

#: code objects whose frames are "the init function" for a warning's stacklevel: torch's own, the recording
#: trampolines, and the stand-ins that other modules register (:func:`register_init_frame`)
_INIT_FRAME_CODES: set[types.CodeType] = set(TRAMPOLINE_CODES) | set(TORCH_CODE.values())


def register_init_frame(code: types.CodeType) -> None:
    """Count frames running ``code`` as a ``torch.nn.init`` function's own frame (a stand-in for one)."""
    _INIT_FRAME_CODES.add(code)


def caller_stacklevel() -> int:
    """The ``stacklevel``, counted from the caller of this function, of the code that called the innermost running
    ``torch.nn.init`` function (or its stand-in): where torch's ``stacklevel=2`` warnings point. 1 (the caller)
    when no such frame is running (a direct call of fastinit's own function)."""
    f = sys._getframe(1)
    level = 1
    while f is not None and f.f_code not in _INIT_FRAME_CODES:
        f = f.f_back
        level += 1
    return level + 1 if f is not None else 1


@functools.cache
def _trunc_normal_site() -> tuple[str, int] | None:
    """(file, line) of torch's ``trunc_normal_`` calling ``_no_grad_trunc_normal_``: the frame its warning names."""
    code = TORCH_CODE["trunc_normal_"]
    seen_helper, line = False, None
    for ins in dis.get_instructions(code):
        pos = getattr(ins, "positions", None)  # Python >= 3.11; before, the line an instruction starts
        if pos is not None and pos.lineno:
            line = pos.lineno
        elif type(ins.starts_line) is int:
            line = ins.starts_line
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and ins.argval == "_no_grad_trunc_normal_":
            seen_helper = True
        elif seen_helper and ins.opname.startswith("CALL") and line is not None:
            return code.co_filename, line
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
