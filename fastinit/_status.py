"""Says once, plainly, what fastinit falls back to when a compiled backend is missing."""

from __future__ import annotations

import os
import warnings

_announced = False


def announce_fallbacks() -> None:
    """Warn once per process if the CPU kernel is missing (values are the same, only slower).

    Set ``FASTINIT_QUIET=1`` to silence it.
    """
    global _announced
    if _announced or os.environ.get("FASTINIT_QUIET") == "1":
        return
    _announced = True
    from .backends import get_backend

    why = get_backend("cpu").unavailable()
    if why:
        msg = (f"fastinit: the compiled CPU kernel is not available ({why}); CPU tensors fall back to the "
               "pure-PyTorch 'reference' backend (same values, much slower). Build it with "
               "`pip install --no-build-isolation -e .`.")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
