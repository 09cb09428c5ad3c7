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

import functools
import sys
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import replay as R
from . import specs as S
from .backends.base import FUSED_DTYPES
from .calls import bind, spec_from_call
from .identity import FreshMemory, Slots, covers, storage_id
from .intercept import INIT_NAMES, PRISTINE, TORCH_FUNCS, not_recording, recording_in_this_thread
from .sharding import is_dtensor

_INIT_NAMES = INIT_NAMES
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
#: random factories: a temporary with this spec instead of torch's RNG (factory -> (spec, allocation))
_RANDOM = {torch.randn: (S.Normal(0.0, 1.0), torch.empty), torch.rand: (S.Uniform(0.0, 1.0), torch.empty),
           torch.randn_like: (S.Normal(0.0, 1.0), torch.empty_like),
           torch.rand_like: (S.Uniform(0.0, 1.0), torch.empty_like)}
#: ops that draw from torch's RNG that the recorder has no spec for: warned about (their values follow
#: torch.manual_seed, not fastinit's seed)
_TORCH_RNG = {torch.Tensor.random_, torch.Tensor.bernoulli_, torch.Tensor.exponential_, torch.Tensor.cauchy_,
              torch.Tensor.log_normal_, torch.Tensor.geometric_, torch.randint, torch.randint_like, torch.randperm,
              torch.bernoulli, torch.multinomial, torch.poisson, torch.normal}
#: ops that write every element they are given without reading it (what makes memory "written")
_WRITES = {R.COPY, R.FILL, R.ZERO, R.SETITEM, R.UNIFORM, R.NORMAL, torch.Tensor.random_, torch.Tensor.bernoulli_,
           torch.Tensor.exponential_, torch.Tensor.cauchy_, torch.Tensor.log_normal_, torch.Tensor.geometric_}


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
    #: the stream seed for this tensor when the init call was given generator=g (g.initial_seed()); None: the run's
    seed: int | None = None
    #: a tensor the recorded code allocated itself (not a tracked one), or a part of a tracked one written on its own
    temporary: bool = False
    #: for a part of a tracked tensor written on its own (``normal_(w[:d])``): that tensor's name
    part_of: str | None = None


class _Temporary(Pending):
    """A temporary, held weakly: a tensor the code has dropped can never be read, so it need never be written
    (and its memory is not kept alive until the end of the recording)."""

    _ref: weakref.ref | None = None
    _death: Callable[[Pending], None] | None = None

    @property  # type: ignore[override]
    def tensor(self) -> torch.Tensor | None:  # type: ignore[override]
        return self._ref() if self._ref is not None else None

    @tensor.setter
    def tensor(self, t: torch.Tensor) -> None:
        me = weakref.ref(self)

        def dropped(_: weakref.ref) -> None:
            p = me()
            if p is not None and p._death is not None:
                p._death(p)

        self._ref = weakref.ref(t, dropped)

    def on_death(self, fn: Callable[[Pending], None]) -> None:
        """Call ``fn(self)`` when the tensor is freed."""
        self._death = fn


def generator_seed(generator: object) -> int | None:
    """The stream seed a recorded call given ``generator=`` writes with: ``generator.initial_seed()``.

    Deterministic and independent of call order and of how far the generator has advanced; the generator's
    state is not consumed.
    """
    if generator is None:
        return None
    return int(generator.initial_seed())


class Recorder(TorchFunctionMode):
    """Turns init calls on ``tracked`` tensors (name -> tensor) into specs; see the module docstring.

    ``flush(pending)`` is called to write a pending spec eagerly when something reads it. ``model``
    (optional) is where the tracked names live: with it, memory replaced while recording is followed
    through the module attribute. ``written`` (optional) collects the names the code wrote in full
    without a spec (whole copies), so a caller can count them as initialized.
    """

    def __init__(self, tracked: dict[str, torch.Tensor], flush: Callable[[Pending], None], *,
                 model: nn.Module | None = None, written: set[str] | None = None):
        super().__init__()
        self.by_storage: dict[int, Pending] = {}
        self.by_name: dict[str, Pending] = {}
        self._sid: dict[str, int] = {}
        for name, t in tracked.items():
            sid = storage_id(t)
            if sid not in self.by_storage:
                p = Pending(name, t)
                self.by_storage[sid], self.by_name[name], self._sid[name] = p, p, sid
        self.slots = Slots(model, list(self.by_name))
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
        names = {id(m): n for n, m in reversed(list(model.named_modules(remove_duplicate=False)))}

        def scoped(module: nn.Module) -> object:
            outer, self.scope = self.scope, names.get(id(module), self.scope)
            try:
                return fn(module)
            finally:
                self.scope = outer

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

    def initialized(self) -> set[str]:
        """Tracked names the code gave a value: a spec, a flush, or writes covering every element."""
        return {p.name for p in self.by_name.values() if p.spec is not None} | self.written | self.flushed

    # -- bookkeeping ---------------------------------------------------------------------------
    def _target(self, t, follow: bool = False) -> tuple[Pending | None, bool]:
        """(the tracked tensor whose memory ``t`` views, whether ``t`` covers all of it).

        ``follow``: on a miss, look for memory replaced since (module attributes) before giving up.
        """
        if not isinstance(t, torch.Tensor) or t.is_sparse:
            return None, False
        p = self.by_storage.get(storage_id(t))
        # memory allocated inside the block is no tracked tensor yet (one installed later, register_buffer, is
        # found by the last refresh): no need to look
        if p is None and follow and not self.fresh.holds(t) and self._refresh():
            p = self.by_storage.get(storage_id(t))
        if p is None:
            return None, False
        return p, covers(t, p.tensor)

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

    def _mark_written(self, p: Pending | None, view: torch.Tensor, whole: bool) -> None:
        """``view`` of ``p`` was written now, eagerly: ``p`` counts as written once every element has been."""
        self.fresh.written(view)
        if p is None or p.temporary or p.name in self.written:
            return
        if whole:
            self.written.add(p.name)
            self._coverage.pop(p.name, None)
            return
        if is_dtensor(view) or view.is_meta:
            return
        with torch.no_grad():
            n = p.tensor.untyped_storage().nbytes() // max(p.tensor.element_size(), 1)
            mask = self._coverage.get(p.name)
            if mask is None or mask.numel() != n:
                mask = self._coverage[p.name] = torch.zeros(n, dtype=torch.bool)
            mask.as_strided(view.shape, view.stride(), view.storage_offset()).fill_(True)
            if mask.as_strided(p.tensor.shape, p.tensor.stride(), p.tensor.storage_offset()).all():
                self.written.add(p.name)
                del self._coverage[p.name]

    # -- memory that moved ---------------------------------------------------------------------
    def _repoint(self, p: Pending, t: torch.Tensor) -> None:
        """``p``'s name now holds ``t`` (or ``p.tensor``'s memory was replaced): track the new memory."""
        old = self._sid.get(p.name)
        if old is not None and self.by_storage.get(old) is p:
            del self.by_storage[old]
        p.tensor = t
        p.spec, p.post_ops, p.seed, p.shadow = None, [], None, None  # what the old memory would have held is gone
        self.written.discard(p.name)
        self.flushed.discard(p.name)
        self._coverage.pop(p.name, None)
        sid = storage_id(t)
        other = self.by_storage.get(sid)
        if other is not None and other.temporary and covers(t, other.tensor):
            # the code initialized a tensor of its own and installed it (register_buffer, p.data = tmp)
            p.spec, p.post_ops, p.seed = other.spec, other.post_ops, other.seed
            if p.spec is None:
                self.written.add(p.name)  # the temporary was written already (read, so flushed, or copied into)
            other.spec, other.post_ops = None, []
            self._forget(other)
        elif other is not None:
            self._sid.pop(p.name, None)  # an alias of another tracked tensor: that one's entry writes the memory
            return
        elif not self.fresh.holds(t) and not t.is_meta:
            self.written.add(p.name)  # values the code computed (a rotary cache, p.data = torch.log(A)): its own
        self.by_storage[sid], self._sid[p.name] = p, sid

    def _refresh(self, check_storage: bool = False) -> bool:
        """Follow module attributes that now hold other tensors (or other memory); True if any did."""
        moved = False
        for name in self.slots.names():
            p = self.by_name[name]
            cur = self.slots.current(name)
            if cur is None:
                continue
            if cur is not p.tensor or (check_storage and self._sid.get(name) is not None
                                       and storage_id(cur) != self._sid[name]):
                self._repoint(p, cur)
                moved = True
        return moved

    def _adoptable(self, t) -> bool:
        return (isinstance(t, torch.Tensor) and not t.is_meta and not is_dtensor(t) and not t.is_sparse
                and t.dtype in FUSED_DTYPES and t.layout == torch.strided)

    def _adopt(self, t: torch.Tensor) -> Pending:
        """Track ``t``, a tensor the recorded code allocated itself, as a temporary."""
        n = self._temp_counts.get(self.scope, 0)
        self._temp_counts[self.scope] = n + 1
        name = f"{self.scope}.<temporary {n}>" if self.scope else f"<temporary {n}>"
        p = _Temporary(name, t, temporary=True)
        p.on_death(self._forget)
        self.temporaries[id(p)] = p
        self.by_storage[storage_id(t)] = p
        return p

    def _forget(self, p: Pending) -> None:
        """Stop tracking temporary ``p`` (written, installed into a tracked tensor, or dropped by the code)."""
        self.temporaries.pop(id(p), None)
        for sid in [sid for sid, q in self.by_storage.items() if q is p]:
            del self.by_storage[sid]

    # -- torch.nn.init interception ------------------------------------------------------------
    def record_call(self, torch_name: str, original: Callable, args: tuple, kwargs: dict):
        """Where :func:`fastinit.intercept.dispatch` hands this thread's ``torch.nn.init`` calls."""
        # Bookkeeping runs with the mode off the stack: each tensor method it calls (stride(), storage lookups)
        # would otherwise go through __torch_function__ first.
        return self._run_unrecorded(self.record_init, torch_name, original, *args, **kwargs)

    def record_init(self, torch_name: str, original: Callable, tensor, /, *args, **kwargs):
        """A ``torch.nn.init`` call: record it if it covers a tracked tensor, else run it (flushing first)."""
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
        if func in _RANDOM:
            return self._random_factory(func, args, kwargs)
        if func is torch.normal and _is_normal_factory(args, kwargs):
            return self._normal_factory(args, kwargs)
        if func in _TORCH_RNG:
            self._warn_torch_rng(func)
        if func == _DATA_SET:
            return self._set_data(func, args, kwargs)
        first = args[0] if args else None
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

    def _after_write(self, p: Pending | None, func, args, whole: bool) -> None:
        first = args[0]
        if p is None or func is not R.SETITEM:
            self._mark_written(p, first, whole)
            return
        region = first[args[1]]  # w[i] = v: mark what a view indexes (advanced indexing copies: not counted)
        if storage_id(region) == storage_id(first):
            self._mark_written(p, region, covers(region, p.tensor))

    def _take_over(self, p: Pending, args, kwargs) -> bool:
        """``tracked.copy_(tmp)`` of a whole pending temporary of the same shape and dtype: ``tracked`` gets its spec.

        The temporary is renamed after the tensor, so should it be read later it holds the same values.
        """
        src = args[1] if len(args) > 1 else kwargs.get("src")
        sp, swhole = self._target(src)
        dst = args[0]
        if sp is None or not sp.temporary or not swhole or sp.spec is None or sp.post_ops or is_dtensor(dst) \
                or tuple(src.shape) != tuple(dst.shape) or src.dtype != dst.dtype or sp is p:
            return False
        p.spec, p.post_ops, p.seed = sp.spec, [], sp.seed
        sp.name = p.name
        return True

    def _set_data(self, func, args, kwargs):
        """``t.data = new``: the tensor object stays, its memory is ``new``'s."""
        target = args[0] if args else None
        p = self.by_storage.get(storage_id(target)) if isinstance(target, torch.Tensor) else None
        if p is not None and p.tensor is not target:
            p = None  # a view's or an alias's .data: the tracked tensor keeps its memory
        out = func(*args, **kwargs)
        if p is not None:
            self._repoint(p, target)
        return out

    def _warn_torch_rng(self, func) -> None:
        if not self._warned_rng:
            self._warned_rng = True
            owner = "torch.Tensor." if getattr(func, "__objclass__", None) is not None else "torch."
            name = owner + getattr(func, "__name__", str(func))
            warnings.warn(f"fastinit: recorded init code called {name}, which draws from torch's RNG: its values "
                          "follow torch.manual_seed, not fastinit's seed, and are not fused",
                          RuntimeWarning, stacklevel=3)

    def _normal_factory(self, args, kwargs):
        """``torch.normal(mean, std, size)`` with float mean and std: a temporary on fastinit's stream."""
        kw = dict(kwargs)
        generator = kw.pop("generator", None)
        mean, std = (list(args[:2]) + [kw.pop(k) for k in ("mean", "std")[len(args[:2]):]])[:2]
        size = args[2] if len(args) > 2 else kw.pop("size")
        spec = S.Normal(float(mean), float(std))
        S.resolve_spec(spec, tuple(size))  # torch's std check, before anything is allocated
        out = torch.empty(size, **kw)
        if not self._adoptable(out) or kw.get("out") is not None:
            self._warn_torch_rng(torch.normal)
            return torch.normal(*args, **kwargs)
        self._set(self._adopt(out), spec, generator)
        return out

    def _random_factory(self, func, args, kwargs):
        """``torch.randn(...)``/``rand``/``*_like`` inside recorded code: a temporary on fastinit's stream."""
        spec, alloc = _RANDOM[func]
        kw = dict(kwargs)
        generator = kw.pop("generator", None)
        self._flush_touching(args, kwargs)
        out = alloc(*args, **kw)
        if not self._adoptable(out) or kw.get("out") is not None:
            return func(*args, **kwargs)
        p = self._adopt(out)
        self._set(p, spec, generator)
        return out


def _is_normal_factory(args, kwargs) -> bool:
    """``torch.normal(mean: float, std: float, size, ...)`` (the overload that makes a new tensor from numbers)."""
    names = ("mean", "std")
    values = list(args[:2]) + [kwargs[k] for k in names[len(args[:2]):] if k in kwargs]
    has_size = len(args) > 2 or "size" in kwargs
    return has_size and len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in values)
