"""Recording: run a module's own init code (or a user's ``init_weights``) without running it.

Under :class:`Recorder`, ``torch.nn.init.*`` calls and whole-tensor writes (``fill_``, ``zero_``,
``uniform_``, ``normal_``) on the tracked tensors become specs instead of kernels. Anything else
that touches a tensor with a pending spec sees exactly what eager code would have seen:

- a write-only partial op (``weight[pad].zero_()``, ``w[0] = 1.0``) is kept, and replayed after the
  fused write, in order;
- a read (``w.mul_(2)``, ``w.erfinv_()``, ``w.sum()``) first *flushes* the pending spec: that tensor
  is written now, with the very values the fused launch would have given it.

``torch.nn.init`` functions are intercepted twice over: the module attributes are swapped while
recording (so ``xavier_uniform_``, which has no ``__torch_function__`` hook, is seen whole), and a
``TorchFunctionMode`` sees calls through other references and the tensor methods.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import specs as S
from .sharding import fill_global, is_dtensor, local_tensor

_INIT_NAMES = tuple(S.BY_TORCH_NAME) + ("zeros_", "ones_")
_INIT_FUNCS = {getattr(torch.nn.init, n): n for n in _INIT_NAMES}
_TORCH_INIT = {n: f for f, n in _INIT_FUNCS.items()}

# Ops that only look at metadata or make views: they never read or write values.
_PASSTHROUGH_METHODS = (
    "__getitem__", "view", "view_as", "reshape", "t", "transpose", "permute", "narrow", "select", "unsqueeze",
    "squeeze", "flatten", "expand", "expand_as", "chunk", "split", "unbind", "detach", "size", "dim", "ndimension",
    "numel", "nelement", "stride", "storage_offset", "is_contiguous", "data_ptr", "untyped_storage",
    "element_size", "get_device", "__len__", "requires_grad_", "is_floating_point", "is_complex", "__hash__",
)
# Of those, the ones that return a copy instead of a view for some inputs (reshape of a
# non-contiguous tensor, advanced indexing): a copy reads the values, so it must see them.
_MAYBE_COPY = {torch.Tensor.__getitem__, torch.Tensor.reshape, torch.Tensor.flatten}
_PASSTHROUGH_PROPS = (
    "shape", "data", "dtype", "device", "is_meta", "is_cuda", "is_cpu", "requires_grad", "grad", "ndim", "T", "mT",
    "is_leaf", "layout", "names", "is_sparse", "is_quantized", "_base", "grad_fn", "itemsize", "nbytes",
)


def _passthrough() -> set:
    out = set()
    for n in _PASSTHROUGH_METHODS:
        if hasattr(torch.Tensor, n):
            out.add(getattr(torch.Tensor, n))
    for n in _PASSTHROUGH_PROPS:
        attr = getattr(torch.Tensor, n, None)
        if attr is not None and hasattr(attr, "__get__"):
            out.add(attr.__get__)
    return out


_PASSTHROUGH = _passthrough()
_FILL, _ZERO = torch.Tensor.fill_, torch.Tensor.zero_
_UNIFORM, _NORMAL = torch.Tensor.uniform_, torch.Tensor.normal_
_SETITEM, _COPY = torch.Tensor.__setitem__, torch.Tensor.copy_
_GETITEM = torch.Tensor.__getitem__


def _storage(t: torch.Tensor) -> int:
    # A DTensor is a wrapper: its identity is the local shard's memory (which to_local() shares).
    return local_tensor(t).untyped_storage()._cdata


def _covers(view: torch.Tensor, whole: torch.Tensor) -> bool:
    if is_dtensor(view) or is_dtensor(whole):
        if not (is_dtensor(view) and is_dtensor(whole)) or tuple(view.shape) != tuple(whole.shape) \
                or tuple(view.placements) != tuple(whole.placements):
            return False
        view, whole = local_tensor(view), local_tensor(whole)
    return (view.storage_offset() == whole.storage_offset() and tuple(view.shape) == tuple(whole.shape)
            and tuple(view.stride()) == tuple(whole.stride()))


@dataclass
class Pending:
    """A tracked tensor's recorded spec and the write-only ops to replay after it."""

    name: str
    tensor: torch.Tensor
    spec: S.Spec | None = None
    post_ops: list[Callable[[], object]] = field(default_factory=list)
    # DTensors only: a meta tensor of the global shape standing in for views of the DTensor (see
    # Recorder._shadow_getitem), so that partial constant writes can be replayed on the local shard.
    shadow: torch.Tensor | None = None


class Recorder(TorchFunctionMode):
    """Turns init calls on ``tracked`` tensors (name -> tensor) into specs; see the module docstring.

    ``flush(pending)`` is called to write a pending spec eagerly when something reads it.
    """

    def __init__(self, tracked: dict[str, torch.Tensor], flush: Callable[[Pending], None]):
        super().__init__()
        self.by_storage: dict[int, Pending] = {}
        for name, t in tracked.items():
            self.by_storage.setdefault(_storage(t), Pending(name, t))
        self._flush_fn = flush
        self._patched: list[tuple[str, Callable]] = []

    # -- results -------------------------------------------------------------------------------
    def recorded(self) -> list[Pending]:
        """Tracked tensors that got a spec, in tracking order."""
        return [p for p in self.by_storage.values() if p.spec is not None]

    # -- bookkeeping ---------------------------------------------------------------------------
    def _target(self, t) -> tuple[Pending | None, bool]:
        """(the tracked tensor whose memory ``t`` views, whether ``t`` covers all of it)."""
        if not isinstance(t, torch.Tensor) or t.is_sparse:
            return None, False
        p = self.by_storage.get(_storage(t))
        if p is None:
            return None, False
        return p, _covers(t, p.tensor)

    def _set(self, p: Pending, spec: S.Spec) -> None:
        p.spec = spec
        p.post_ops = []

    def _flush(self, p: Pending) -> None:
        if p.spec is not None:
            self._run_unrecorded(self._flush_fn, p)
            p.spec = None
            p.post_ops = []

    def _flush_touching(self, args, kwargs) -> None:
        for t in tree_flatten((args, kwargs))[0]:
            p, _ = self._target(t)
            if p is not None:
                self._flush(p)

    # -- torch.nn.init interception ------------------------------------------------------------
    def record_init(self, torch_name: str, original: Callable, tensor, /, *args, **kwargs):
        """A ``torch.nn.init`` call: record it if it covers a tracked tensor, else run it (flushing first)."""
        p, whole = self._target(tensor)
        if p is not None and not whole and p.spec is not None and torch_name in ("zeros_", "ones_", "constant_"):
            # a constant written over part of a pending tensor (HF's padding row): replay it after the fused write
            value = {"zeros_": 0.0, "ones_": 1.0}.get(torch_name)
            if value is None:
                value = _bind(original, (tensor, *args), kwargs)["val"]
            p.post_ops.append(self._partial_fill(p, tensor, None, value,
                                                 functools.partial(original, tensor, *args, **kwargs)))
            return tensor
        if p is not None and self._is_shadow(p, tensor):
            raise _shadow_error(p)
        if p is None or not whole:
            if p is not None:
                self._flush(p)
            return self._run_unrecorded(original, tensor, *args, **kwargs)
        spec = _spec_from_call(torch_name, original, tensor, args, kwargs)
        if spec is not None:
            self._set(p, spec)
        return tensor

    # -- DTensor views -------------------------------------------------------------------------
    def _is_shadow(self, p: Pending, t) -> bool:
        return p.shadow is not None and isinstance(t, torch.Tensor) and t.is_meta and _storage(t) == _storage(p.shadow)

    def _shadow_getitem(self, p: Pending, index):
        """``dtensor[index]`` while ``dtensor`` has a pending spec: a view of its meta shadow.

        Indexing a sharded DTensor gathers it into a new tensor, so a write into the result
        (``weight[padding_idx].zero_()``) would never reach the parameter. A view of a global-shaped
        meta stand-in records where the write goes instead; :func:`fill_global` replays it on the
        local shard after the fused write.
        """
        if p.shadow is None:
            p.shadow = torch.empty(tuple(p.tensor.shape), dtype=p.tensor.dtype, device="meta")
            self.by_storage[_storage(p.shadow)] = p
        return p.shadow[index]  # inside __torch_function__ this mode is already off

    def _partial_fill(self, p: Pending, view, index, value, eager: Callable[[], object]) -> Callable[[], object]:
        """The post op writing constant ``value`` into ``view`` (or ``view[index]``) of a pending tensor.

        ``eager`` is the recorded call itself, replayed as is on a plain tensor.
        """
        if not self._is_shadow(p, view):
            return eager
        shape, stride, offset = tuple(view.shape), tuple(view.stride()), view.storage_offset()

        def region(g: torch.Tensor) -> torch.Tensor:
            v = g.as_strided(shape, stride, offset)
            return v[index] if index is not None else v

        return functools.partial(fill_global, p.tensor, region, float(value))

    def _run_unrecorded(self, fn: Callable, /, *args, **kwargs):
        # Running the original init while this mode is active would re-enter record_init through
        # its __torch_function__ hook; outside __torch_function__ the mode is still on the stack.
        if torch.overrides._get_current_function_mode() is self:
            with torch.overrides._pop_mode_temporarily():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    def _recording(self, torch_name: str, original: Callable) -> Callable:
        """The recording stand-in for ``torch.nn.init.<torch_name>``."""
        return functools.wraps(original)(functools.partial(_call_recording, self, torch_name, original))

    @contextlib.contextmanager
    def patch_init(self):
        """Swap the ``torch.nn.init`` functions for recording ones while inside."""
        init = torch.nn.init
        saved = {n: getattr(init, n) for n in _INIT_NAMES}
        for n, fn in saved.items():
            setattr(init, n, self._recording(n, fn))
        try:
            yield
        finally:
            for n, fn in saved.items():
                setattr(init, n, fn)

    def __enter__(self):
        self._patch_cm = self.patch_init()
        self._patch_cm.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._patch_cm.__exit__(*exc)

    # -- every other torch call ----------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _GETITEM and args and is_dtensor(args[0]):
            p, whole = self._target(args[0])
            if p is not None and whole and p.spec is not None:
                return self._shadow_getitem(p, args[1])
        if func in _PASSTHROUGH:
            out = func(*args, **kwargs)
            if func in _MAYBE_COPY and isinstance(out, torch.Tensor) and args:
                p, _ = self._target(args[0])
                if p is not None and p.spec is not None and _storage(out) != _storage(args[0]):
                    self._flush(p)
                    out = func(*args, **kwargs)
            return out
        if func in _INIT_FUNCS:  # reached through a reference taken before patching
            return _call_recording(self, _INIT_FUNCS[func], func, *args, **kwargs)
        if getattr(func, "__module__", None) == "transformers.initialization" and func.__name__ in _TORCH_INIT:
            # transformers patches torch.nn.init with flag-guarded copies while it initializes, so the
            # torch function's own __torch_function__ hook reports the guarded copy: honour its guard
            tensor = args[0] if args else kwargs.get("tensor")
            if getattr(tensor, "_is_hf_initialized", False):
                return tensor
            return _call_recording(self, func.__name__, _TORCH_INIT[func.__name__], *args, **kwargs)
        first = args[0] if args else None
        p, whole = self._target(first)
        whole = whole and func is not _SETITEM  # w[i] = v writes part of w
        if p is not None:
            rest = (args[1:], kwargs)
            reads_pending = any(self._target(t)[0] is not None and self._target(t)[0].spec is not None
                                for t in tree_flatten(rest)[0])
            if not reads_pending:
                spec = _spec_from_method(func, args, kwargs) if whole else None
                if spec is not None:
                    self._set(p, spec)
                    return first
                if whole and func is _COPY:
                    p.spec, p.post_ops = None, []  # fully overwritten by data that does not depend on it
                    return func(*args, **kwargs)
                if not whole and p.spec is not None and _write_only(func, args, kwargs):
                    if self._is_shadow(p, first):
                        index = args[1] if func is _SETITEM else None
                        value = 0.0 if func is _ZERO else args[-1]
                        p.post_ops.append(self._partial_fill(p, first, index, value,
                                                             functools.partial(func, *args, **kwargs)))
                    else:
                        p.post_ops.append(functools.partial(func, *args, **kwargs))
                    return first if func is not _SETITEM else None
            if self._is_shadow(p, first) or any(self._is_shadow(p, t) for t in tree_flatten(rest)[0]):
                raise _shadow_error(p)
        self._flush_touching(args, kwargs)
        return func(*args, **kwargs)


def _shadow_error(p: Pending) -> NotImplementedError:
    return NotImplementedError(
        f"{p.name} is a sharded DTensor with a recorded spec, and the init code reads part of it "
        "(e.g. w[i].mul_(2)). fastinit replays only constant writes to parts of a sharded tensor; "
        "initialize it with a policy of specs (fastinit.Rules) or without the partial read.")


def _write_only(func, args, kwargs) -> bool:
    """Ops that overwrite part of a tensor with a constant, reading nothing of it."""
    if func is _ZERO:
        return True
    if func is _FILL:
        return len(args) > 1 and isinstance(args[1], (bool, int, float))
    if func is _SETITEM:
        return len(args) > 2 and isinstance(args[2], (bool, int, float))
    return False


def _spec_from_method(func, args, kwargs) -> S.Spec | None:
    """A whole-tensor ``fill_``/``zero_``/``uniform_``/``normal_`` as a spec (None if it is none of those)."""
    if func is _ZERO:
        return S.Constant(0.0)
    if func is _FILL and len(args) > 1 and isinstance(args[1], (bool, int, float)):
        return S.Constant(float(args[1]))
    if func is _UNIFORM:
        bound = inspect.signature(lambda a=0.0, b=1.0, *, generator=None: None).bind(*args[1:], **_rename(kwargs))
        bound.apply_defaults()
        return S.Uniform(float(bound.arguments["a"]), float(bound.arguments["b"]))
    if func is _NORMAL:
        bound = inspect.signature(lambda mean=0.0, std=1.0, *, generator=None: None).bind(*args[1:], **kwargs)
        bound.apply_defaults()
        return S.Normal(float(bound.arguments["mean"]), float(bound.arguments["std"]))
    return None


def _rename(kwargs: dict) -> dict:
    out = dict(kwargs)
    if "from" in out:
        out["a"] = out.pop("from")
    if "to" in out:
        out["b"] = out.pop("to")
    return out


def _call_recording(recorder: Recorder, torch_name: str, original: Callable, /, *args, **kwargs):
    # Positional-only parameters all the way down, so that no keyword of the user's call can collide with ours:
    # whatever torch.nn.init accepts is recorded, and a bad call gets torch's own TypeError (from _bind).
    if args and "tensor" not in kwargs:
        tensor, args = args[0], args[1:]
    elif not args and "tensor" in kwargs:
        tensor = kwargs.pop("tensor")
    else:
        return original(*args, **kwargs)  # no tensor, or two: Python refuses it with torch's message
    # Bookkeeping runs with the mode off the stack: each tensor method it calls (stride(), storage lookups)
    # would otherwise go through __torch_function__ first.
    return recorder._run_unrecorded(recorder.record_init, torch_name, original, tensor, *args, **kwargs)


_RECORDING_CODE = _call_recording.__code__


def _stacklevel_of_init_caller() -> int:
    """The ``stacklevel``, counted from the caller of this function, of the code that called the recording
    stand-in of a ``torch.nn.init`` function: where torch's own warnings point (``Recorder._recording``)."""
    f = sys._getframe(1)
    level = 1
    while f is not None and f.f_code is not _RECORDING_CODE:
        f = f.f_back
        level += 1
    return level + 1 if f is not None else 1


@functools.cache
def _signature(fn: Callable) -> inspect.Signature:
    return inspect.signature(fn)


@functools.cache
def _binder(fn: Callable) -> tuple[tuple[str, ...], dict, frozenset]:
    """(positional names, defaults, all names) of ``fn``, or no names when it takes ``*args``/``**kwargs``."""
    params = _signature(fn).parameters.values()
    if any(p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        return (), {}, frozenset()
    return (tuple(p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD),
            {p.name: p.default for p in params if p.default is not p.empty}, frozenset(p.name for p in params))


def _bind(fn: Callable, args: tuple, kwargs: dict) -> dict:
    """Every parameter of ``fn`` for the call ``fn(*args, **kwargs)``, as ``Signature.bind`` + ``apply_defaults``.

    The common call is bound by hand (``Signature.bind`` is a third of the recording time); anything unusual
    goes through ``Signature.bind``, which raises torch's own TypeError for a bad call.
    """
    positional, defaults, names = _binder(fn)
    if names and len(args) <= len(positional) and names.issuperset(kwargs) \
            and not any(n in kwargs for n in positional[:len(args)]):
        a = dict(defaults)
        a.update(zip(positional, args))
        a.update(kwargs)
        if len(a) == len(names):
            return a
    try:
        bound = _signature(fn).bind(*args, **kwargs)
    except TypeError:
        fn(*args, **kwargs)  # Python refuses the call before the body runs, with the function's own message
        raise
    bound.apply_defaults()
    return dict(bound.arguments)


def _spec_from_call(torch_name: str, original: Callable, tensor, args, kwargs) -> S.Spec | None:
    """The spec of a ``torch.nn.init.<torch_name>(tensor, *args, **kwargs)`` call, with torch's checks and warnings."""
    a = _bind(original, (tensor, *args), kwargs)
    a.pop("tensor", None)
    a.pop("generator", None)
    shape = tuple(tensor.shape)
    if torch_name == "zeros_":
        spec: S.Spec = S.Constant(0.0)
    elif torch_name == "ones_":
        spec = S.Constant(1.0)
    else:
        spec = S.BY_TORCH_NAME[torch_name](**a)
    if S.warn_like_torch(spec, shape, stacklevel=_stacklevel_of_init_caller()):
        return None
    S.resolve_spec(spec, shape)  # argument errors now, where eager code would raise them
    return spec
