"""Loads the compiled kernels (``fastinit._C``) once (``import fastinit`` asks, to say what it falls back to),
never failing the import."""

from __future__ import annotations

import importlib

_state: tuple[bool, str] | None = None


def load() -> tuple[bool, str]:
    """Import ``fastinit._C`` once; return ``(available, reason)``.

    ``reason`` says why the extension is missing (not built, or failed to load), or where it was loaded
    from. Importing the module registers ``torch.ops.fastinit.fill_group``; its fake (meta) kernel is
    registered alongside so ``torch.compile``/``torch.library.opcheck`` can trace it. No torch equivalent.
    """
    global _state
    if _state is not None:
        return _state
    try:
        mod = importlib.import_module("fastinit._C")
    except ImportError as exc:  # not built (pure-Python install) or built against another torch
        _state = (False, f"fastinit._C is not built or failed to import ({exc})")
        return _state
    except OSError as exc:  # a shared library it needs could not be loaded
        _state = (False, f"fastinit._C failed to load ({exc})")
        return _state
    from . import ops_fake

    ops_fake.register()
    _state = (True, f"loaded from {getattr(mod, '__file__', '?')}")
    return _state


def available() -> bool:
    """True when the compiled kernels can be used in this process."""
    return load()[0]
