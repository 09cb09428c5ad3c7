"""What a backend is: something that fills a (device, dtype) group, and says why it cannot."""

from __future__ import annotations

import torch

FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


class Backend:
    """A way to execute a group. Fused backends consume the tables of ``fastinit.tables``.

    Subclasses set ``name`` and ``fused`` and implement ``unavailable``, ``reasons`` and ``fill``.
    """

    name: str = "?"
    fused: bool = True  # consumes tables (stream values); False for the plain torch.nn.init backend
    device_type: str | None = None  # the only device type it takes (None: any)

    def unavailable(self) -> str | None:
        """None when the backend can run in this process, else why not (one line)."""
        return None

    def reasons(self, device: torch.device, dtype: torch.dtype, kind: int | None) -> list[str]:
        """Why this backend cannot take a tensor of ``device``/``dtype`` with table kind ``kind``
        (``kind`` None: a spec with no fused form, such as orthogonal). Empty when it can."""
        why = []
        off = self.unavailable()
        if off:
            why.append(off)
        if self.fused and kind is None:
            why.append("no fused form for this distribution")
        if self.fused and dtype not in FUSED_DTYPES:
            why.append(f"dtype {dtype} is not a fused dtype")
        dev = torch.device(device).type
        if self.device_type is not None and dev != self.device_type:
            why.append(f"the {self.name} backend takes {self.device_type.upper()} tensors only, not {dev}")
        return why

    def fill(self, outs: list[torch.Tensor], table: torch.Tensor, params: torch.Tensor, seed: int) -> None:
        """Write all ``outs`` (contiguous, one device and dtype) as ``table``/``params`` say, in one launch."""
        raise NotImplementedError
