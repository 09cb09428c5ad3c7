"""Interception: every call of a ``torch.nn.init`` function, through any reference, reaches the recorder.

Init code holds these functions through many references: the ``torch.nn.init`` attribute, a
``functools.partial`` built before recording (torchtitan), a ``from torch.nn.init import
trunc_normal_`` taken at import time, transformers' ``TORCH_INIT_FUNCTIONS`` copies. Swapping module
attributes reaches only the first, and torch 2.13's ``trunc_normal_`` (like ``xavier_uniform_``) has no
``__torch_function__`` hook, so the mode alone would see its internals and torch's rejection loop would
draw from torch's RNG. So the *function objects themselves* are redirected: while any thread records,
each one's ``__code__`` is a trampoline with the very same parameters (the function object keeps its
defaults, annotations and name, so ``inspect.signature`` and Python's TypeErrors for bad calls are
torch's) that hands the bound arguments to :func:`dispatch`. ``dispatch`` asks a thread-local stack
whether *this* thread is recording; if not (another thread, or the recorder running torch's own code),
it calls a pristine copy of the function, which runs torch's code unchanged.

The swap is process-global, so it is reference counted under a lock: the first recorder in (any
thread) installs the trampolines, the last one out restores torch's code objects.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .torch_warnings import called_from_init_caller, register_init_frame

#: the torch.nn.init functions the recorder turns into specs
INIT_NAMES = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
              "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")

#: name -> torch's function object (the one every reference holds; its __code__ is swapped while recording)
TORCH_FUNCS: dict[str, types.FunctionType] = {n: getattr(torch.nn.init, n) for n in INIT_NAMES}
#: name -> torch's own code object of the function (restored after recording)
TORCH_CODE: dict[str, types.CodeType] = {n: f.__code__ for n, f in TORCH_FUNCS.items()}


def _pristine(f: types.FunctionType) -> types.FunctionType:
    copy = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    copy.__kwdefaults__ = f.__kwdefaults__
    copy.__dict__.update(f.__dict__)
    copy.__qualname__, copy.__doc__, copy.__module__ = f.__qualname__, f.__doc__, f.__module__
    copy.__annotations__ = dict(f.__annotations__)
    return copy


#: name -> a copy of torch's function that always runs torch's own code (what unrecorded calls run), as if called
#: by the code that called the init function running now, so that torch's warnings point where eager code's do
PRISTINE: dict[str, Callable] = {n: called_from_init_caller(_pristine(f)) for n, f in TORCH_FUNCS.items()}


def _trampoline_code(name: str, f: types.FunctionType) -> types.CodeType:
    params = list(inspect.signature(f).parameters.values())
    if any(p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        raise TypeError(f"torch.nn.init.{name} has a signature fastinit cannot mirror: {inspect.signature(f)}")
    positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    kwonly = [p.name for p in params if p.kind == p.KEYWORD_ONLY]
    head = ", ".join(positional + (["*"] + kwonly if kwonly else []))
    src = (f"def {name}({head}):\n"
           f"    from fastinit.intercept import dispatch\n"
           f"    return dispatch({name!r}, ({''.join(n + ', ' for n in positional)}), "
           f"{{{', '.join(f'{k!r}: {k}' for k in kwonly)}}})\n")
    namespace: dict[str, Any] = {}
    exec(compile(src, f"<fastinit recording stand-in for torch.nn.init.{name}>", "exec"), namespace)  # noqa: S102
    return namespace[name].__code__


_TRAMPOLINE_CODE: dict[str, types.CodeType] = {n: _trampoline_code(n, f) for n, f in TORCH_FUNCS.items()}
#: the code objects of the stand-ins (warnings walk the stack to the frame running one of them)
TRAMPOLINE_CODES = frozenset(_TRAMPOLINE_CODE.values())
for _code in (*TRAMPOLINE_CODES, *TORCH_CODE.values()):
    register_init_frame(_code)

_state = threading.local()
_lock = threading.Lock()
_users = 0


def _stack() -> list:
    s = getattr(_state, "stack", None)
    if s is None:
        s = _state.stack = []
    return s


def active() -> Any:
    """The recorder this thread records into, or None (not recording, or the recorder is running torch's code)."""
    s = getattr(_state, "stack", None)
    return s[-1] if s else None


@contextlib.contextmanager
def recording_in_this_thread(recorder: Any) -> Iterator[None]:
    """While inside, this thread's ``torch.nn.init`` calls go to ``recorder``; other threads' run as torch runs them."""
    global _users
    with _lock:
        if _users == 0:
            for n, f in TORCH_FUNCS.items():
                f.__code__ = _TRAMPOLINE_CODE[n]
        _users += 1
    _stack().append(recorder)
    try:
        yield
    finally:
        _stack().pop()
        with _lock:
            _users -= 1
            if _users == 0:
                for n, f in TORCH_FUNCS.items():
                    f.__code__ = TORCH_CODE[n]


@contextlib.contextmanager
def not_recording() -> Iterator[None]:
    """While inside, this thread's ``torch.nn.init`` calls run torch's own code (the recorder's flushes)."""
    _stack().append(None)
    try:
        yield
    finally:
        _stack().pop()


def dispatch(name: str, args: tuple, kwargs: dict) -> Any:
    """Where every ``torch.nn.init.<name>`` call lands while the stand-ins are in: the recorder, or torch."""
    rec = active()
    if rec is None:
        return PRISTINE[name](*args, **kwargs)
    return rec.record_call(name, PRISTINE[name], args, kwargs)

