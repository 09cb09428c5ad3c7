"""Recording: run a module's own init code (or a user's ``init_weights``) without running it.

Under :class:`Recorder`, ``torch.nn.init.*`` calls and whole-tensor writes (``fill_``, ``zero_``,
``uniform_``, ``normal_``) on the tracked tensors become specs instead of kernels. Anything else
that touches a tensor with a pending spec sees exactly what eager code would have seen:

- a write-only partial op (``weight[pad].zero_()``, ``w[0] = 1.0``) is kept, and replayed after the
  fused write, in order (:mod:`fastinit.replay`);
- a read (``w.mul_(2)``, ``w.erfinv_()``, ``w.sum()``) first *flushes* the pending spec: that tensor
  is written now, with the very values the fused launch would have given it;
- a tensor the code allocates and initializes itself (a *temporary*: ``_ConvNd`` on a channels_last
  weight, q/k/v parts of a fused qkv, ``torch.randn(...)``) gets fastinit's stream under a key derived
  from its order among the temporaries, never torch's RNG; a whole same-shape copy of a pending
  temporary into a tracked tensor passes the spec on (fused); any other whole copy counts as written;
- ``generator=g`` makes that tensor's values depend on ``g.initial_seed()`` instead of the seed;
- memory replaced while recording (``to_empty``, ``p.data = ...``, reassigned buffers) is followed
  through the module attribute (:mod:`fastinit.identity`); memory left uninitialized is refused.

How calls reach the recorder, through any reference and only in the recording thread, is
:mod:`fastinit.intercept`.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import replay as R
from . import specs as S
from . import walk
from .calls import bind, spec_from_call
from .identity import FreshMemory, Slots, TrackedMemory, covers, disjoint_view, storage_id
from .intercept import PRISTINE, TORCH_FUNCS, not_recording, recording_in_this_thread
from .pending import Pending, generator_seed
from .sharding import is_dtensor
from .temporaries import RANDOM, TORCH_RNG, Temporaries, is_normal_factory

_INIT_FUNCS = {f: n for n, f in TORCH_FUNCS.items()}

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
_GETITEM = torch.Tensor.__getitem__
_DATA_SET = torch.Tensor.data.__set__
#: allocations whose memory holds garbage until written
_EMPTY = {torch.empty, torch.empty_like, torch.empty_strided, torch.Tensor.new_empty, torch.Tensor.new_empty_strided}
#: ops that write every element they are given without reading it (what makes memory "written")
_RANDOM_WRITES = {R.UNIFORM, R.NORMAL, torch.Tensor.random_, torch.Tensor.bernoulli_, torch.Tensor.exponential_,
                  torch.Tensor.cauchy_, torch.Tensor.log_normal_, torch.Tensor.geometric_}
_WRITES = {R.COPY, R.FILL, R.ZERO, R.SETITEM} | _RANDOM_WRITES


_run = threading.local()


@contextlib.contextmanager
def run_context(model: nn.Module, written: set[str]) -> Iterator[None]:
    """While inside, recorders made in this thread without ``model=``/``written=`` take these (see run_policy)."""
    outer = getattr(_run, "current", None)
    _run.current = (model, written)
    try:
        yield
    finally:
        _run.current = outer


class Recorder(TrackedMemory, Temporaries, TorchFunctionMode):
    """Turns init calls on ``tracked`` tensors (name -> tensor) into specs; see the module docstring.

    ``flush(pending)`` is called to write a pending spec eagerly when something reads it. ``model``
    (optional) is where the tracked names live: with it, memory replaced while recording is followed
    through the module attribute. ``written`` (optional) collects the names the code wrote in full
    without a spec (whole copies), so a caller can count them as initialized.
    """

    def __init__(self, tracked: dict[str, torch.Tensor], flush: Callable[[Pending], None], *,
                 model: nn.Module | None = None, written: set[str] | None = None):
        super().__init__()
        run = getattr(_run, "current", None)
        if run is not None:  # recorders made by any policy inside run_policy (e.g. "hf") follow its model, feed its set
            model = model if model is not None else run[0]
            written = written if written is not None else run[1]
        self.by_storage: dict[int, Pending] = {}
        self.by_name: dict[str, Pending] = {}
        self._sid: dict[str, int] = {}
        #: storages holding several tracked tensors on disjoint memory (parameters that are views of one flat
        #: buffer): storage id -> those tensors' pendings, the first also in by_storage
        self.views: dict[int, list[Pending]] = {}
        for name, t in tracked.items():
            sid = storage_id(t)
            first = self.by_storage.get(sid)
            if first is None:
                p = Pending(name, t)
                self.by_storage[sid], self.by_name[name], self._sid[name] = p, p, sid
            elif disjoint_view(t, self.views.get(sid, [first])):  # else an alias: the first one writes it
                p = Pending(name, t)
                self.views.setdefault(sid, [first]).append(p)
                self.by_name[name], self._sid[name] = p, sid
        self.slots = Slots(model, {n: p.tensor for n, p in self.by_name.items()})
        self.fresh = FreshMemory()
        self.written: set[str] = written if written is not None else set()
        self.flushed: set[str] = set()
        self.temporaries: dict[int, Pending] = {}  # id(pending) -> pending, in order of adoption
        self._coverage: dict[str, torch.Tensor] = {}
        self._flush_fn = flush
        self._outside: list = []
        #: the module whose init code runs now (its name in the model): temporaries are keyed by it and their order
        #: in it, so adding or renaming other modules leaves their values alone
        self.scope = ""
        self._temp_counts: dict[str, int] = {}
        self._warned_rng = False
        self._quiet = 0

    def apply(self, model: nn.Module, fn: Callable[[nn.Module], object]) -> None:
        """``model.apply(fn)`` itself (overrides such as FSDP's included), each call scoped to the module's name."""
        names = {id(m): n for n, m in reversed(walk.modules(model))}

        def scoped(module: nn.Module) -> object:
            outer, self.scope = self.scope, names.get(id(module), self.scope)
            try:
                return fn(module)
            finally:
                self.scope = outer

        walk.code_runs()
        model.apply(scoped)

    # -- results -------------------------------------------------------------------------------
    def recorded(self) -> list[Pending]:
        """Tensors that got a spec: tracked ones in tracking order, then the temporaries still referenced.

        Follows replaced memory one last time, and raises if a tracked tensor's memory was replaced by
        uninitialized memory that nothing wrote (eager code would leave it holding garbage).
        """
        self._refresh(check_storage=True)
        garbage = [p.name for p in self.by_name.values()
                   if p.spec is None and p.name not in self.written and p.name not in self.flushed
                   and self.fresh.holds(p.tensor)]
        if garbage:
            raise RuntimeError(
                "fastinit: the recorded init code replaced the memory of these tensors with uninitialized memory "
                "(to_empty, .data = torch.empty_like(...), a new empty buffer) and never wrote it, so they would "
                f"hold garbage: {', '.join(garbage)}")
        out = [p for p in self.by_name.values() if p.spec is not None]
        # (temporaries the code dropped are gone already: see _Temporary)
        out += [p for p in list(self.temporaries.values()) if p.spec is not None and p.tensor is not None]
        return out

    # -- the default policy's fast path (fastinit.known_inits) ----------------------------------
    def spec_of(self, t: torch.Tensor) -> S.Spec | None:
        """The spec recorded so far for tracked tensor ``t`` (None: none, or not tracked)."""
        p = self._lookup(t)
        return p.spec if p is not None else None

    def set_whole(self, t: torch.Tensor, spec: S.Spec) -> None:
        """Record ``spec`` for the whole of tracked tensor ``t``, as a recorded init call on it would (a known
        module's call: ``t`` is a whole, plain, non-empty parameter, and the call can neither warn nor fail)."""
        p = self._lookup(t, t.untyped_storage()._cdata)  # a plain tensor: no DTensor unwrapping
        if p is None or (p.tensor is not t and not covers(t, p.tensor)):
            raise RuntimeError("set_whole: not a whole tracked tensor")  # the fast path's own precondition
        self._set(p, spec)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _set(self, p: Pending, spec: S.Spec, generator: object = None) -> None:
        p.spec = spec
        p.post_ops = []
        p.seed = generator_seed(generator)

    def _flush(self, p: Pending) -> None:
        if p.spec is not None:
            self._run_unrecorded(self._flush_fn, p)
            self.fresh.written(p.tensor)
            p.spec = None
            p.post_ops = []
            if p.temporary:
                self._forget(p)  # written: from here on it is a tensor like any other
            else:
                self.flushed.add(p.name)

    def _flush_touching(self, args, kwargs) -> None:
        for t in tree_flatten((args, kwargs))[0]:
            p, _ = self._target(t)
            if p is not None:
                self._flush(p)

    # -- torch.nn.init interception ------------------------------------------------------------
    def record_call(self, torch_name: str, original: Callable, args: tuple, kwargs: dict):
        """Where :func:`fastinit.intercept.dispatch` hands this thread's ``torch.nn.init`` calls."""
        # Bookkeeping runs with the mode off the stack: each tensor method it calls (stride(), storage lookups)
        # would otherwise go through __torch_function__ first.
        return self._run_unrecorded(self.record_init, torch_name, original, *args, **kwargs)

    def record_init(self, torch_name: str, original: Callable, tensor, /, *args, **kwargs):
        """A ``torch.nn.init`` call: record it if it covers a tracked tensor, else run it (flushing first)."""
        self._refuse_spanning(tensor, f"torch.nn.init.{torch_name}")  # before _target flushes what it spans
        p, whole = self._target(tensor, follow=True)
        if p is None and self._adoptable(tensor):
            p, whole = self._adopt(tensor), True
        if p is not None and not whole and p.spec is not None and torch_name in ("zeros_", "ones_", "constant_"):
            # a constant written over part of a pending tensor (HF's padding row): replay it after the fused write
            value = {"zeros_": 0.0, "ones_": 1.0}.get(torch_name)
            if value is None:
                value = bind(original, (tensor, *args), kwargs)["val"]
            p.post_ops.append(R.partial_fill(p, tensor, None, value,
                                             functools.partial(original, tensor, *args, **kwargs)))
            return tensor
        if p is not None and R.is_shadow(p, tensor):
            raise R.shadow_error(p)
        if p is not None and not whole:
            self._flush(p)
            out = self._write_view_now(p, torch_name, original, tensor, args, kwargs)
            self._mark_written(p, tensor, whole=False)
            return out
        if p is None:
            out = original(tensor, *args, **kwargs)
            self.fresh.written(tensor)
            return out
        spec, generator = spec_from_call(torch_name, original, tensor, args, kwargs)
        if spec is not None:
            self._set(p, spec, generator)
        return tensor

    def _write_view_now(self, p: Pending, torch_name: str, original: Callable, view, args, kwargs):
        """An init call on part of a tracked tensor (``normal_(w[:d])``): write it now, on fastinit's stream.

        Its key comes from the tensor's name and the view's place in it, so it is deterministic and
        differs from every other view's.
        """
        if not self._adoptable(view):
            return original(view, *args, **kwargs)
        spec, generator = spec_from_call(torch_name, original, view, args, kwargs)
        if spec is None:
            return view
        name = f"{p.name}[offset {view.storage_offset()}, shape {tuple(view.shape)}, stride {tuple(view.stride())}]"
        part = Pending(name, view, spec, seed=generator_seed(generator), temporary=True, part_of=p.name)
        self._flush_fn(part)
        return view

    def _run_unrecorded(self, fn: Callable, /, *args, **kwargs):
        # Running torch's own code while this mode is active would come back here through __torch_function__
        # (and through the stand-ins); outside __torch_function__ the mode is still on the stack.
        # Another mode pushed above this one (``with torch.device(...)`` inside the block) keeps it on the stack:
        # then _quiet makes __torch_function__ pass everything straight through.
        with not_recording():
            self._quiet += 1
            try:
                if torch.overrides._get_current_function_mode() is self:
                    with torch.overrides._pop_mode_temporarily():
                        return fn(*args, **kwargs)
                return fn(*args, **kwargs)
            finally:
                self._quiet -= 1

    def __enter__(self):
        cm = recording_in_this_thread(self)
        cm.__enter__()
        self._outside.append(cm)
        try:
            return super().__enter__()
        except BaseException:
            self._outside.pop().__exit__(*sys.exc_info())
            raise

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._outside.pop().__exit__(*exc)

    # -- DTensor views -------------------------------------------------------------------------
    def _shadow_getitem(self, p: Pending, index):
        """``dtensor[index]`` while ``dtensor`` has a pending spec: a view of its meta shadow.

        Indexing a sharded DTensor gathers it into a new tensor, so a write into the result
        (``weight[padding_idx].zero_()``) would never reach the parameter. A view of a global-shaped
        meta stand-in records where the write goes instead; :func:`fill_global` replays it on the
        local shard after the fused write.
        """
        if p.shadow is None:
            p.shadow = torch.empty(tuple(p.tensor.shape), dtype=p.tensor.dtype, device="meta")
            self.by_storage[storage_id(p.shadow)] = p
        return p.shadow[index]  # inside __torch_function__ this mode is already off

    # -- every other torch call ----------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._quiet:
            return func(*args, **kwargs)
        if func is _GETITEM and args and is_dtensor(args[0]):
            p, whole = self._target(args[0])
            if p is not None and whole and p.spec is not None:
                return self._shadow_getitem(p, args[1])
        if func in _PASSTHROUGH:
            out = func(*args, **kwargs)
            if func in _MAYBE_COPY and isinstance(out, torch.Tensor) and args:
                p, _ = self._target(args[0])
                if p is not None and p.spec is not None and storage_id(out) != storage_id(args[0]):
                    self._flush(p)
                    out = func(*args, **kwargs)
            return out
        if func in _INIT_FUNCS:  # torch's own hook, should a caller reach it: the same as the stand-in
            name = _INIT_FUNCS[func]
            return self._run_unrecorded(self.record_init, name, PRISTINE[name], *args, **kwargs) if args \
                else func(**kwargs)
        if func in _EMPTY:
            out = func(*args, **kwargs)
            self.fresh.add(out)
            return out
        if func in RANDOM:
            return self._random_factory(func, args, kwargs)
        if func is torch.normal and is_normal_factory(args, kwargs):
            return self._normal_factory(args, kwargs)
        if func in TORCH_RNG:
            self._warn_torch_rng(func)
        if func == _DATA_SET:
            return self._set_data(func, args, kwargs)
        first = args[0] if args else None
        if func in _RANDOM_WRITES:  # before _target flushes what it spans
            self._refuse_spanning(first, f"Tensor.{getattr(func, '__name__', func)}")
        p, whole = self._target(first, follow=func in _WRITES)
        whole = whole and func is not R.SETITEM  # w[i] = v writes part of w
        if p is None and whole is False and func in (R.UNIFORM, R.NORMAL) and self._adoptable(first) \
                and not kwargs.get("out"):
            p, whole = self._adopt(first), True  # t = torch.empty(...).normal_(): a temporary
        if p is not None:
            rest = (args[1:], kwargs)
            reads_pending = any(self._target(t)[0] is not None and self._target(t)[0].spec is not None
                                for t in tree_flatten(rest)[0])
            if func is R.COPY and whole and self._take_over(p, args, kwargs):
                return first
            if not reads_pending:
                spec, generator = R.spec_from_method(func, args, kwargs) if whole else (None, None)
                if spec is not None:
                    self._set(p, spec, generator)
                    return first
                if whole and func is R.COPY:
                    p.spec, p.post_ops, p.seed = None, [], None  # overwritten by data that does not depend on it
                    out = func(*args, **kwargs)
                    self._mark_written(p, first, whole=True)
                    return out
                if not whole and p.spec is not None and R.write_only(func, args, kwargs):
                    if R.is_shadow(p, first):
                        index = args[1] if func is R.SETITEM else None
                        value = 0.0 if func is R.ZERO else args[-1]
                        p.post_ops.append(R.partial_fill(p, first, index, value,
                                                         functools.partial(func, *args, **kwargs)))
                    else:
                        p.post_ops.append(functools.partial(func, *args, **kwargs))
                    return first if func is not R.SETITEM else None
            if R.is_shadow(p, first) or any(R.is_shadow(p, t) for t in tree_flatten(rest)[0]):
                raise R.shadow_error(p)
        self._flush_touching(args, kwargs)
        out = func(*args, **kwargs)
        if func in _WRITES and isinstance(first, torch.Tensor):
            self._after_write(p, func, args, whole)
        dest = kwargs.get("out")
        if isinstance(dest, torch.Tensor):  # torch.cat(parts, out=weight) (megatron's CPU init) writes all of weight
            q, q_whole = self._target(dest, follow=True)
            self._mark_written(q, dest, q_whole)
        return out
