"""The ``"hf"`` policy: a Hugging Face ``transformers`` model's own ``_init_weights``, recorded and fused.

``fastinit.apply(model, "hf")`` (or ``fastinit.materialize(model, device, "hf")``) runs what
``model.initialize_weights()`` / ``post_init()`` would run (``_init_weights`` on every submodule,
composite models dispatching to each sub-model's own ``_init_weights``) under fastinit's recorder:
each ``init.normal_`` / ``zeros_`` / ``ones_`` becomes a spec of the fused plan, the padding row
zeroing of embeddings is replayed after the write, and buffers such as rotary ``inv_freq`` are
recomputed exactly as HF does.

Flags: a parameter or buffer whose ``_is_hf_initialized`` is True (loaded from a checkpoint,
or tied) is left untouched, as HF's guarded init functions do. The *module* flags that an
earlier init pass (the constructor's ``post_init``) leaves behind are ignored, since asking
fastinit to initialize a model means initializing it; they are set again afterwards, as HF
would. transformers is imported only when this policy is used.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from . import walk
from .record import Pending, Recorder

__all__ = ["is_hf_model", "hf_init", "record_hf"]


def is_hf_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``transformers.PreTrainedModel`` (False when transformers is not imported)."""
    import sys

    mu = sys.modules.get("transformers.modeling_utils")
    return mu is not None and isinstance(model, mu.PreTrainedModel)


def hf_init(model: nn.Module) -> None:
    """Run the model's own HF init over every submodule, ignoring module flags left by a previous pass.

    The torch/transformers equivalent is ``model.initialize_weights()`` on a model whose modules
    are not yet flagged ``_is_hf_initialized``.
    """
    if not is_hf_model(model):
        raise TypeError(f'policy "hf" needs a transformers PreTrainedModel, not {type(model).__name__}')
    for m in model.modules():
        if getattr(m, "_is_hf_initialized", False):
            m._is_hf_initialized = False
    walk.code_runs()
    if hasattr(model, "initialize_weights"):
        model.initialize_weights()  # transformers >= 4.5x: smart_apply over sub-models, guarded inits
    else:  # older transformers
        model.apply(model._init_weights)


def record_hf(model: nn.Module, tracked: dict[str, torch.Tensor], flush: Callable[[Pending], None]) -> list[Pending]:
    """The specs HF's init gives each tracked tensor of ``model`` (nothing written but what must be read).

    Tied tensors end with their tie source's init (the input embedding's, padding row zero), as
    ``from_config`` leaves them: it initializes every module's own parameter, then ties.
    """
    from .ties import record_untied

    def record(tr: dict[str, torch.Tensor], fl: Callable[[Pending], None]) -> list[Pending]:
        rec = Recorder(tr, fl)
        with rec:
            hf_init(model)
        return rec.recorded()

    return record_untied(model, tracked, flush, record)
