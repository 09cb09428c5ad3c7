"""The checks torch's in-place ops make before they write, reproduced before fastinit writes anything.

torch is the oracle: wherever a check depends on the tensor's dtype or device (uniform bounds, std,
the fill value's conversion, generator types), fastinit runs torch's own op on a *probe*, a tensor
with the same dtype and device and no elements (or one element for ``fill_``), so the exception type,
the message and the order of the checks are torch's. A zero-element op runs every argument check of
the op and draws nothing from any generator. What a probe cannot see (the written tensor's own
properties: inference, internal overlap) is checked here with torch's messages, in torch's order.
"""

from __future__ import annotations

import torch

INFERENCE_MESSAGE = (
    "Inplace update to inference tensor outside InferenceMode is not allowed.You can make a clone to get a normal "
    "tensor before doing inplace update.See https://github.com/pytorch/rfcs/pull/17 for more details.")
OVERLAP_MESSAGE = (
    "unsupported operation: more than one element of the written-to tensor refers to a single memory location. "
    "Please clone() the tensor before performing the operation.")


def _probe(t: torch.Tensor, numel: int = 0) -> torch.Tensor:
    # DisableTorchFunction: a probe is fastinit's own op; a recording TorchFunctionMode must not see it.
    with torch._C.DisableTorchFunction():
        return torch.empty(numel, dtype=t.dtype, device=t.device)


def check_uniform_args(t: torch.Tensor, a: object, b: object, generator: object) -> None:
    """Raise what ``t.uniform_(a, b, generator=generator)`` raises for its arguments (bounds per dtype)."""
    with torch._C.DisableTorchFunction():
        _probe(t).uniform_(a, b, generator=generator)


def check_normal_args(t: torch.Tensor, mean: object, std: object, generator: object) -> None:
    """Raise what ``t.normal_(mean, std, generator=generator)`` raises for its arguments."""
    with torch._C.DisableTorchFunction():
        _probe(t).normal_(mean, std, generator=generator)


def torch_fill_value(t: torch.Tensor, val: object) -> float:
    """``val`` as ``t.fill_(val)`` converts it to ``t``'s dtype (exact in a double); torch's errors for bad values."""
    with torch._C.DisableTorchFunction():
        one = _probe(t, 1)
        one.fill_(val)
        return float(one.item())


def check_generator(generator: object, op: str = "uniform_") -> None:
    """Raise torch's TypeError for a ``generator=`` that is neither None nor a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{op}(): argument 'generator' must be torch.Generator, not {type(generator).__name__}")


def check_writable(t: torch.Tensor) -> None:
    """torch's refusal of an in-place write to an inference tensor outside ``torch.inference_mode()``."""
    if t.is_inference() and not torch.is_inference_mode_enabled():
        raise RuntimeError(INFERENCE_MESSAGE)


def has_internal_overlap(t: torch.Tensor) -> bool:
    """Whether two elements of ``t`` share memory (an expanded view): torch's random ops refuse those."""
    return torch._debug_has_internal_overlap(t) == 1  # MemOverlap::Yes; TooHard (2) is let through, as torch does


def check_no_internal_overlap(t: torch.Tensor) -> None:
    """torch's refusal of a random in-place write to a tensor whose elements share memory."""
    if has_internal_overlap(t):
        raise RuntimeError(OVERLAP_MESSAGE)
