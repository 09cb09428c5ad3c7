"""fastinit: initialize PyTorch model parameters in one fused launch per (device, dtype).

Values follow a counter-based Philox stream keyed by (seed, parameter name, global element index):
the same on every backend, device and sharding layout. See README.md and docs/STREAM.md.
"""

from __future__ import annotations

from . import init, specs
from ._status import announce_fallbacks
from .apply import apply, last_report
from .audit import audit
from .backends import backends
from .deferred import empty_init, materialize
from .explain import explain
from .keys import key_for
from .policy import PRESETS, Rules, preset
from .recording import recording
from .specs import (
                    Constant,
                    Dirac,
                    Eye,
                    KaimingNormal,
                    KaimingUniform,
                    Normal,
                    Orthogonal,
                    Sparse,
                    TruncNormal,
                    Uniform,
                    XavierNormal,
                    XavierUniform,
)

__version__ = "0.1.0"

__all__ = [
    "apply", "recording", "explain", "audit", "empty_init", "materialize", "init", "specs", "backends", "last_report",
    "key_for", "Rules", "preset", "PRESETS",
    "Constant", "Dirac", "Eye", "KaimingNormal", "KaimingUniform", "Normal", "Orthogonal", "Sparse", "TruncNormal",
    "Uniform", "XavierNormal", "XavierUniform",
]

announce_fallbacks()
