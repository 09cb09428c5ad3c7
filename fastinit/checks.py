"""The checks torch's in-place ops make before they write, reproduced before fastinit writes anything.

torch is the oracle: wherever a check depends on the tensor's dtype or device (uniform bounds, std,
the fill value's conversion, generator types), fastinit runs torch's own op on a *probe*, a tensor
with the same dtype and device and no elements, so the exception type, the message and the order of
the checks are torch's. A zero-element op runs every argument check of the op and draws nothing from
any generator (``fill_`` is probed at the tensor's own size, capped at 2). What a probe cannot see (the
written tensor's own properties: inference, internal overlap) is checked here with torch's messages.
"""

from __future__ import annotations

import torch

INFERENCE_MESSAGE = (
    "Inplace update to inference tensor outside InferenceMode is not allowed.You can make a clone to get a normal "
    "tensor before doing inplace update.See https://github.com/pytorch/rfcs/pull/17 for more details.")
OVERLAP_MESSAGE = (
    "unsupported operation: more than one element of the written-to tensor refers to a single memory location. "
    "Please clone() the tensor before performing the operation.")


# The probes call the ATen methods on TensorBase directly: they are fastinit's own checks, and neither a
# recording TorchFunctionMode nor code that wraps torch.Tensor's Python methods (a test spy) should see them.
_UNIFORM, _NORMAL, _FILL = torch._C.TensorBase.uniform_, torch._C.TensorBase.normal_, torch._C.TensorBase.fill_
_NEW_TENSOR = torch._C.TensorBase.new_tensor


def _probe(t: torch.Tensor, numel: int = 0) -> torch.Tensor:
    # DisableTorchFunction: a probe is fastinit's own op; a recording TorchFunctionMode must not see it.
    with torch._C.DisableTorchFunction():
        return torch.empty(numel, dtype=t.dtype, device=t.device)


def _probe_and_generator(t: torch.Tensor, generator: object) -> tuple[torch.Tensor, object]:
    # Floating dtypes: no elements, the caller's generator (argument checks only, nothing drawn). Other dtypes
    # skip some checks when empty (complex uniform_ bounds, integer normal_), so they get one element, as the
    # tensor has, and a private generator (of the same type and device) that the probe may draw from.
    if t.dtype.is_floating_point or t.numel() == 0:
        return _probe(t), generator
    if generator is None or isinstance(generator, torch.Generator):
        device = generator.device if generator is not None else t.device
        generator = torch.Generator(device=device)
    return _probe(t, 1), generator


def check_uniform_args(t: torch.Tensor, a: object, b: object, generator: object) -> None:
    """Raise what ``t.uniform_(a, b, generator=generator)`` raises for its arguments (bounds per dtype)."""
    probe, generator = _probe_and_generator(t, generator)
    with torch._C.DisableTorchFunction():
        _UNIFORM(probe, a, b, generator=generator)


def check_normal_args(t: torch.Tensor, mean: object, std: object, generator: object) -> None:
    """Raise what ``t.normal_(mean, std, generator=generator)`` raises for its arguments."""
    probe, generator = _probe_and_generator(t, generator)
    with torch._C.DisableTorchFunction():
        _NORMAL(probe, mean, std, generator=generator)


def check_new_tensor(t: torch.Tensor, value: object) -> None:
    """Raise what ``t.new_tensor(value, device="cpu")`` raises (inf into an integer dtype)."""
    with torch._C.DisableTorchFunction():
        _NEW_TENSOR(_probe(t), value, device="cpu")


def torch_fill_value(t: torch.Tensor, val: object) -> object:
    """``val`` as ``t.fill_(val)`` converts it to ``t``'s dtype (a Python number); torch's errors for bad values.

    The probe has ``min(t.numel(), 2)`` elements: torch fills a one-element tensor through another path,
    which converts without the overflow check (``fill_(1e40)`` gives inf in a 1-element bfloat16 tensor
    and raises for any other size). A zero-element tensor gets the checks and no value (0.0).
    """
    n = min(t.numel(), 2)
    with torch._C.DisableTorchFunction():
        probe = _probe(t, n)
        _FILL(probe, val)
        return probe[0].item() if n else 0.0


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


def shares_elements(t: torch.Tensor, limit: int = 1 << 24) -> bool:
    """Whether two elements of ``t`` share memory, exactly: where torch's own test gives up (as_strided windows),
    the storage index of every element is counted (up to ``limit`` elements; beyond, True: torch then writes)."""
    verdict = torch._debug_has_internal_overlap(t)
    if verdict != 2:  # MemOverlap::No / Yes
        return verdict == 1
    if t.numel() > limit:
        return True
    with torch._C.DisableTorchFunction():
        index = torch.zeros((), dtype=torch.int64)
        for n, st in zip(t.shape, t.stride()):
            index = index.unsqueeze(-1) + torch.arange(n, dtype=torch.int64) * st
        return int(index.unique().numel()) < t.numel()


def check_no_internal_overlap(t: torch.Tensor) -> None:
    """torch's refusal of a random in-place write to a tensor whose elements share memory."""
    if has_internal_overlap(t):
        raise RuntimeError(OVERLAP_MESSAGE)
