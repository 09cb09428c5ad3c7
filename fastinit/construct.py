"""Recording constructors: under ``empty_init``, every write into a registered parameter goes to a log.

:class:`ConstructionRecorder` is the interception half (``torch.nn.init`` stand-ins and a
``TorchFunctionMode``); :mod:`fastinit.construct_log` holds what it records and replays it.

- a whole-tensor init (``torch.nn.init.*`` through any reference that reaches torch's hook,
  transformers' guarded copies, ``fill_``/``zero_``/``uniform_``/``normal_``) becomes the tensor's spec;
- a random init of part of a tensor (``init.normal_(w[:k])``) is replayed from the fastinit stream
  with its own key (the name plus ``[n]``), never torch's RNG;
- every other write (``w[pad].zero_()``, ``w.copy_(table)``, ``w.mul_(2)``, ``w[0] = 1``) is kept in
  order, with the values it reads copied as they were;
- a tie is the same Parameter registered twice: one slot, so the last init before the tie is what
  the tied tensor holds, as in eager construction; a new Parameter over a recorded one's whole
  memory (torchtune's ``nn.Parameter(linear.weight)``) takes its record over;
- a random init of a plain temporary is held back (:mod:`fastinit.construct_temps`): a parameter
  made from it, or a whole copy of it into one, gets the spec itself; any other read writes it
  eagerly with torch's init first, as does the end of the block;
- a parameter made by a constant factory (``nn.Parameter(torch.ones(d))``) keeps that constant
  when it goes to the meta device, and a value factory asked for the meta device
  (``torch.arange(n, device=self.A_log.device)``) makes its values on the CPU instead, since the
  parameter is meta only because of ``empty_init``.

Meta parameters hold no values, so everything a constructor computes *from* one (a buffer made
from a weight) stays meta; writing such a value into a parameter marks that parameter as
impossible to replay, and ``materialize`` raises instead of guessing. Small parameters that stay
real are recorded the same way (so ``materialize`` writes them from the stream, bitwise what
``"default"`` gives); constant writes run on them eagerly, random ones do not, and values computed
from a real parameter whose random init was deferred are flagged the same way.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable

import torch
from torch.overrides import TorchFunctionMode

from . import specs as S
from .calls import spec_from_call
from .construct_log import ConstructionLog, Slot, tensors_in
from .construct_temps import VIEWS, Temporaries, constant_made, eligible, from_torch_rng, mark_torch_rng
from .intercept import INIT_NAMES as _INIT_NAMES
from .intercept import PRISTINE as _TORCH_INIT
from .intercept import recording_in_this_thread
from .record import _INIT_FUNCS, _PASSTHROUGH
from .replay import spec_from_method
from .temporaries import RANDOM as _RANDOM_FACTORIES
from .temporaries import TORCH_RNG as _TORCH_RNG
from .torch_warnings import register_init_frame, run_as_called_from

_SETITEM, _COPY, _FILL, _ZERO = torch.Tensor.__setitem__, torch.Tensor.copy_, torch.Tensor.fill_, torch.Tensor.zero_
_RANDOM_METHODS = {torch.Tensor.uniform_, torch.Tensor.normal_}
# Calls that draw from torch's RNG when they run eagerly here: what they make is marked (construct_temps.mark_torch_rng)
_DRAWS = set(_RANDOM_FACTORIES) | _TORCH_RNG | _RANDOM_METHODS
_CONSTANT_INITS = ("zeros_", "ones_", "constant_", "eye_", "dirac_")
# set on real tensors computed from a parameter whose random init was deferred: their value is not eager's
_TAINT = STALE_ATTR = "_fastinit_stale_value"
# Factories that make values: under empty_init a `device=param.device` (meta) would leave those values nowhere
_VALUE_FACTORIES = {torch.arange, torch.ones, torch.zeros, torch.full, torch.linspace, torch.logspace, torch.rand,
                    torch.randn, torch.randint, torch.tensor, torch.eye, torch.as_tensor}
_INPLACE_DUNDERS = {"__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__",
                    "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__", "__setitem__"}


def _written(func: Callable, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tensor an op writes: the first argument of an in-place op, or ``out=``."""
    out = kwargs.get("out")
    if isinstance(out, torch.Tensor):
        return out
    name = getattr(func, "__name__", "")
    inplace = name in _INPLACE_DUNDERS or (name.endswith("_") and not name.startswith("__"))
    if inplace and args and isinstance(args[0], torch.Tensor):
        return args[0]
    return None


def _overwrites_whole(func: Callable, args: tuple) -> bool:
    """Ops that give every element of their (whole) target a value that does not depend on it."""
    if func is _COPY or func is _ZERO:
        return True
    return func is _FILL and len(args) > 1


class ConstructionRecorder(TorchFunctionMode):
    """Records writes into the parameters of ``log`` (see the module docstring)."""

    def __init__(self, log: ConstructionLog):
        super().__init__()
        self.log = log
        self.temps = Temporaries()
        self.constants = Temporaries()  # tensors a factory filled with one constant (their values are real too)
        self._flushing = 0  # >0 while a temporary is written eagerly: every init runs as torch's
        self._thread = threading.get_ident()  # the patches are global; only this thread's calls are recorded

    def _other_thread(self) -> bool:
        return threading.get_ident() != self._thread

    def finish(self) -> None:
        """The block ends: write every pending temporary still alive, as eager code had."""
        self._flushing += 1
        try:
            self._run(self.temps.flush_all)
        finally:
            self._flushing -= 1

    def adopt(self, param: torch.Tensor) -> S.Spec | None:
        """The spec of a parameter made from a whole pending temporary (``nn.Parameter(w)`` after
        ``init.normal_(w)``) or from a constant factory (``nn.Parameter(torch.ones(d))``), which a move
        to the meta device would otherwise lose."""
        spec = self.temps.take(param)
        return spec if spec is not None else self.constants.take(param)

    def _flush_temps(self, tensors: list[torch.Tensor]) -> None:
        for t in tensors:
            self.constants.drop_view(t)
            if self.temps.pending(t)[0] is not None:
                self._flushing += 1
                try:
                    self._run(self.temps.flush, t)
                finally:
                    self._flushing -= 1

    # -- helpers -------------------------------------------------------------------------------
    def _is_tainted(self, t: torch.Tensor) -> bool:
        if getattr(t, _TAINT, False):
            return True
        s, _ = self.log.lookup(t)
        return s is not None and s.stale

    def _from_rng(self, t: torch.Tensor) -> bool:
        # a real recorded parameter says so in its slot (a later whole init clears it); other tensors carry a mark
        s, _ = self.log.lookup(t)
        return s.torch_rng if s is not None else from_torch_rng(t)

    def _run(self, fn: Callable, /, *args, **kwargs):
        if torch.overrides._get_current_function_mode() is self:
            with torch.overrides._pop_mode_temporarily():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    def _run_on_meta(self, fn: Callable, *args, **kwargs):
        # Running the op on the meta tensor keeps eager's shape and dtype errors; random fills are skipped
        # (torch's meta normal_ imports torch._dynamo on first use), as are ops with no meta kernel.
        try:
            return self._run(fn, *args, **kwargs)
        except NotImplementedError:
            return args[0] if args else None

    # -- torch.nn.init -------------------------------------------------------------------------
    def record_init(self, torch_name: str, original: Callable, tensor, /, *args, _run: Callable | None = None,
                    **kwargs):
        """A ``torch.nn.init`` call: recorded if it writes a parameter of the log (or a temporary), else run as is.

        ``_run`` is what runs it eagerly (``original`` unless its body is what was intercepted).
        """
        run = _run or original
        if self.constants.by_storage and not self._flushing:
            self.constants.drop_view(tensor)
        slot, whole = self.log.lookup(tensor) if not self._flushing else (None, False)
        constant = torch_name in _CONSTANT_INITS
        if slot is None:
            if self._flushing or constant or not eligible(tensor) or isinstance(tensor, torch.nn.Parameter):
                self._flush_temps([tensor])
                out = self._run(run, tensor, *args, **kwargs)
                if not constant:  # torch's own random init, run now: its values follow torch.manual_seed
                    mark_torch_rng(tensor)
                return out
            spec = self._run(_spec_from_call, torch_name, original, tensor, args, kwargs)
            if spec is not None:
                self.temps.hold(tensor, spec)  # a temporary: its spec waits for where it is copied
            return tensor
        spec = self._run(_spec_from_call, torch_name, original, tensor, args, kwargs)  # torch's errors and warnings
        if spec is None:  # torch warns and writes nothing (zero-element tensors)
            return tensor
        if whole:
            self.log.set_spec(slot, spec)
        elif constant:
            self.log.add_op(slot, original, (tensor, *args), kwargs, tainted=self._is_tainted,
                            from_rng=self._from_rng)
            self.log.cover(slot, tensor)
        else:
            self.log.add_op(slot, None, (tensor,), {}, spec=spec, tainted=self._is_tainted)
            self.log.cover(slot, tensor)
        self._after_write(slot, tensor, constant, functools.partial(original, tensor, *args, **kwargs), whole)
        return tensor

    def _after_write(self, slot: Slot, view: torch.Tensor, deterministic: bool, eager: Callable, whole: bool) -> None:
        """Keep a real tensor's eager value meaningful: run deterministic writes, mark deferred random ones."""
        if view.is_meta:
            return
        if deterministic:
            self._run(eager)
            if whole:
                slot.stale = False
        else:
            slot.stale = True

    def _init_call(self, torch_name: str, original: Callable, args: tuple, kwargs: dict):
        """A call of ``torch.nn.init.<torch_name>``, through the module's attribute (a stand-in) or any reference."""
        if self._other_thread():
            return original(*args, **kwargs)
        if args and "tensor" not in kwargs:
            return self.record_init(torch_name, original, *args, **kwargs)
        if not args and "tensor" in kwargs:
            tensor = kwargs.pop("tensor")
            return self.record_init(torch_name, original, tensor, **kwargs)
        return original(*args, **kwargs)  # Python refuses the call with torch's own message

    def _stand_in(self, torch_name: str, original: Callable) -> Callable:
        def call(*args, **kwargs):
            return self._init_call(torch_name, original, args, kwargs)

        # torch's warnings point at this frame's caller, as at the function's. Only this frame: a call through a
        # reference has its trampoline's frame, and two such frames on one stack would hide the outer one's caller.
        register_init_frame(call.__code__)
        return functools.wraps(original)(call)

    def _trunc_stand_in(self, original_body: Callable) -> Callable:
        """The stand-in for ``torch.nn.init._no_grad_trunc_normal_``, which every ``trunc_normal_`` reaches.

        torch's ``trunc_normal_`` has no ``__torch_function__`` hook and returns at once on a meta
        tensor, so a reference taken before recording (transformers keeps one) would be lost
        silently: its body's helper, looked up in the module at call time, is where it is seen.
        """
        trunc = _TORCH_INIT["trunc_normal_"]

        def body(tensor, mean, std, a, b, generator=None):
            # torch's body, where it runs, runs as if called from here: its warning points where eager code's does
            caller = sys._getframe(1)
            if self._other_thread():
                return run_as_called_from(caller, original_body, tensor, mean, std, a, b, generator=generator)
            return self.record_init("trunc_normal_", trunc, tensor, mean, std, a, b, generator=generator,
                                    _run=functools.partial(run_as_called_from, caller, original_body))

        return body

    @contextlib.contextmanager
    def patch_init(self):
        """Swap the ``torch.nn.init`` functions (and trunc_normal_'s body) for recording ones while inside."""
        init = torch.nn.init
        saved = {n: getattr(init, n) for n in _INIT_NAMES}
        for n in saved:  # what a stand-in runs eagerly is torch's code itself (a pristine copy: no trampoline)
            setattr(init, n, self._stand_in(n, _TORCH_INIT[n]))
        # every other reference to torch's function objects (functools.partial, from-imports, megatron's
        # init_method): their code objects are trampolines into this thread's recorder, as for fastinit.recording
        intercepted = recording_in_this_thread(self)
        intercepted.__enter__()
        body = getattr(init, "_no_grad_trunc_normal_", None)
        if body is not None:
            init._no_grad_trunc_normal_ = self._trunc_stand_in(body)
        param_new = torch.nn.Parameter.__dict__["__new__"]
        torch.nn.Parameter.__new__ = staticmethod(self._parameter_new(param_new.__func__))
        try:
            yield
        finally:
            intercepted.__exit__(None, None, None)
            for n, fn in saved.items():
                setattr(init, n, fn)
            if body is not None:
                init._no_grad_trunc_normal_ = body
            torch.nn.Parameter.__new__ = param_new

    def _parameter_new(self, original: Callable) -> Callable:
        """``nn.Parameter.__new__`` that keeps a temporary it wraps pending (the Parameter outlives the temporary)."""

        def new(cls, data=None, requires_grad=True):
            p = original(cls, data, requires_grad)
            if isinstance(data, torch.Tensor) and not self._other_thread():
                self.temps.share(data, p)
                self.constants.share(data, p)
                if from_torch_rng(data):
                    mark_torch_rng(p)
                if getattr(data, _TAINT, False):  # nn.Parameter(value computed from a deferred init): still not eager's
                    setattr(p, _TAINT, True)
            return p

        return new

    def __enter__(self):
        self._thread = threading.get_ident()
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
        if func in _PASSTHROUGH:
            return func(*args, **kwargs)
        if self.temps.by_storage and not self._flushing:
            handled, out = self._through_temporary(func, args, kwargs)
            if handled:
                return out
        if func in _INIT_FUNCS:  # reached through torch's own hook: run torch's code (never the trampoline) if run
            return self._run(self._init_call, _INIT_FUNCS[func], _TORCH_INIT[_INIT_FUNCS[func]], args, dict(kwargs))
        if getattr(func, "__module__", None) == "transformers.initialization" and func.__name__ in _TORCH_INIT:
            tensor = args[0] if args else kwargs.get("tensor")
            if getattr(tensor, "_is_hf_initialized", False):  # transformers' guard, honoured
                return tensor
            return self._run(self._init_call, func.__name__, _TORCH_INIT[func.__name__], args, dict(kwargs))
        if func in _VALUE_FACTORIES and _is_meta_device(kwargs.get("device")):
            # `torch.arange(n, device=self.weight.device)`: eagerly a real table on the parameter's device; the
            # parameter is meta only because of empty_init, so the table is made on the CPU (copies move it later)
            kwargs = {**kwargs, "device": "cpu"}
        if self.constants.by_storage and getattr(func, "__name__", "") == "__set__" and len(args) == 2:
            out = func(*args, **kwargs)
            self.constants.share(args[1], args[0])
            return out
        target = _written(func, args, kwargs)
        if target is not None and self.constants.by_storage:
            self.constants.drop_view(target)  # written: no longer what its factory made
        slot, whole = self.log.lookup(target)
        if slot is None:
            out = func(*args, **kwargs)
            value = constant_made(func, args, kwargs)
            if value is not None and eligible(out):
                self.constants.hold(out, S.Constant(value))
            if any(self._is_tainted(t) for t in tensors_in((args, kwargs))):
                for t in tensors_in(out) + ([target] if target is not None else []):
                    if not t.is_meta:
                        setattr(t, _TAINT, True)
            _mark_draws(func, args, kwargs, out, target, self._from_rng)
            return out
        return self._record_write(slot, whole, func, args, kwargs)

    def _through_temporary(self, func: Callable, args: tuple, kwargs: dict) -> tuple[bool, object]:
        """Calls that read a pending temporary: hand its spec on, or write it eagerly first; (handled, result)."""
        tensors = tensors_in((args, kwargs))
        if not any(self.temps.pending(t)[0] is not None for t in tensors):
            return False, None
        if func in VIEWS:  # views of a pending temporary are pending too
            return True, func(*args, **kwargs)
        if getattr(func, "__name__", "") == "__set__" and len(args) == 2:  # new.data = temporary
            out = func(*args, **kwargs)
            self.temps.share(args[1], args[0])
            return True, out
        if func is _COPY and len(args) >= 2 and not kwargs:
            slot, whole = self.log.lookup(args[0])
            p, src_whole = self.temps.pending(args[1])
            if slot is not None and whole and p is not None and src_whole \
                    and tuple(args[0].shape) == tuple(args[1].shape) and not self._is_tainted(args[1]):
                self.log.set_spec(slot, p.spec)  # a whole same-shape copy passes the spec on: fused, its own key
                if not args[0].is_meta:
                    slot.stale = True
                return True, args[0]
        if func in _INIT_FUNCS or _written(func, args, kwargs) is not None:
            self._flush_temps(tensors)
            return False, None
        out = func(*args, **kwargs)  # a value-preserving step on the (not yet written) values is cheap to run
        if self.temps.alias(func, args, kwargs, out):
            return True, out
        self._flush_temps(tensors)  # anything else reads the values: they must exist now
        out = func(*args, **kwargs)
        _mark_draws(func, args, kwargs, out, _written(func, args, kwargs), self._from_rng)
        return True, out

    def record_call(self, torch_name: str, original: Callable, args: tuple, kwargs: dict):
        """Where :func:`fastinit.intercept.dispatch` hands this thread's calls of torch's init functions made
        through any reference (``original`` is torch's code, pristine)."""
        return self._init_call(torch_name, original, args, dict(kwargs))

    def _record_write(self, slot: Slot, whole: bool, func: Callable, args: tuple, kwargs: dict):
        # an out= op writes its out (torch.cat(parts, out=w): args[0] is the parts), a method its self
        out = "out" in kwargs
        view = kwargs["out"] if out else args[0]
        sources = tensors_in((args if out else args[1:], {k: v for k, v in kwargs.items() if k != "out"}))
        reads_slot = any(self.log.lookup(t)[0] is not None for t in sources)
        spec = None
        if not reads_slot and "out" not in kwargs:
            spec = self._run(_spec_from_method, func, args, kwargs)
        random = func in _RANDOM_METHODS
        if spec is not None and whole:
            self.log.set_spec(slot, spec)
        elif spec is not None and random:
            self.log.add_op(slot, None, (view,), {}, spec=spec, tainted=self._is_tainted)
            self.log.cover(slot, view)
        else:
            overwrite = whole and _overwrites_whole(func, args) and func is not _SETITEM
            self.log.add_op(slot, func, args, kwargs, whole_write=overwrite, tainted=self._is_tainted,
                            from_rng=self._from_rng)
            if not whole and _overwrites_whole(func, args) and func is not _SETITEM and "out" not in kwargs:
                self.log.cover(slot, view)
            random = False
            if not view.is_meta and any(self._is_tainted(t) for t in sources):
                slot.stale = True
        if view.is_meta:
            if random:
                return view
            return self._run_on_meta(func, *args, **kwargs)
        if random:
            slot.stale = True
            return view if func is not _SETITEM else None
        out = self._run(func, *args, **kwargs)
        if whole and spec is not None:
            slot.stale = False
        return out


def _mark_draws(func: Callable, args: tuple, kwargs: dict, out: object, target: torch.Tensor | None,
                drawn: Callable[[torch.Tensor], bool]) -> None:
    """Mark what an eagerly run call made from torch's RNG: a draw itself, or a computation on drawn values."""
    if func in _DRAWS or any(drawn(t) for t in tensors_in((args, kwargs))):
        for t in tensors_in(out) + ([target] if target is not None else []):
            mark_torch_rng(t)


def _is_meta_device(device: object) -> bool:
    if not isinstance(device, (str, torch.device)):
        return False
    return torch.device(device).type == "meta"


def _no_generator(spec: S.Spec | None, generator: object, what: str) -> S.Spec | None:
    # A constructor's record holds one spec per tensor under the materialize seed: a generator= given to the
    # constructor's own init call cannot be honoured there, so say so rather than drop it.
    if generator is not None:
        raise NotImplementedError(
            f"fastinit.empty_init: the constructor calls {what} with generator=, which a constructor record cannot "
            "replay; build the model outside empty_init, or initialize it after construction with "
            "fastinit.recording(model, ...) (which honours generator=)")
    return spec


def _spec_from_call(torch_name: str, original: Callable, tensor, args, kwargs) -> S.Spec | None:
    spec, generator = spec_from_call(torch_name, original, tensor, args, kwargs)
    return _no_generator(spec, generator, f"torch.nn.init.{torch_name}")


def _spec_from_method(func, args, kwargs) -> S.Spec | None:
    spec, generator = spec_from_method(func, args, kwargs)
    return _no_generator(spec, generator, getattr(func, "__name__", "a random fill"))
