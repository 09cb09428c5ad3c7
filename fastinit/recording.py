"""``fastinit.recording``: record any block of init code, and write it fused when the block ends."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .apply import Writer, set_last_report
from .policy import tracked_tensors
from .record import Recorder


@contextlib.contextmanager
def recording(model: nn.Module, *, seed: int | None = None, backend: str = "auto", prefix: str = "",
              generator: torch.Generator | None = None) -> Iterator[Recorder]:
    """Record the init code run inside the block on ``model``'s tensors; write it all, fused, at a clean exit.

    The torch equivalent is running the block itself (``model.init_weights()``, HF's ``post_init()``,
    any ``torch.nn.init`` calls): fastinit records what it would write to every parameter and
    floating buffer of ``model`` (and to the temporaries it initializes), then validates the whole
    plan and writes it in one launch per (device, dtype). ``seed``, ``backend``, ``generator`` and
    ``prefix`` are :func:`fastinit.apply`'s. If the block raises, or the plan does not validate,
    nothing is written (but tensors the block itself read, which were written on the spot so that
    it read their values) and the exception propagates. Only the calling thread is recorded.
    The model may be on the meta device when the block starts if the block allocates it
    (``self.to_empty(device=...)`` inside ``init_weights``): tensors are followed through their
    module attributes.
    """
    writer = Writer(seed, backend, prefix, generator)
    rec = Recorder(tracked_tensors(model), writer.flush, model=model)
    with rec:
        yield rec
    set_last_report(writer.write(rec.recorded()))
