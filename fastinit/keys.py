"""Tensor keys and seeds of the stream contract."""

from __future__ import annotations

import hashlib

import torch

_KEYS: dict[str, int] = {}  # name -> key: a model's names come back on every call


def key_for(name: str) -> int:
    """The 64-bit key of a parameter: first 8 bytes, little-endian, of blake2b(name, digest_size=8)."""
    key = _KEYS.get(name)
    if key is None:
        key = int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")
        if len(_KEYS) >= 1 << 18:
            _KEYS.clear()
        _KEYS[name] = key
    return key


def draw_seed(generator: torch.Generator | None = None) -> int:
    """One 64-bit seed drawn from ``generator`` (torch's default CPU generator when None).

    So ``torch.manual_seed(n)`` makes ``seed=None`` reproducible, and successive calls differ.
    """
    device = generator.device if generator is not None else "cpu"
    halves = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=generator, device=device).tolist()
    return halves[0] | (halves[1] << 32)


def torch_generator_for(seed: int, key: int, device: torch.device) -> torch.Generator:
    """A torch generator seeded from (seed, key), for the specs that run through torch itself."""
    mixed = int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little")
    gen = torch.Generator(device=device)
    gen.manual_seed(mixed & ((1 << 63) - 1))
    return gen
