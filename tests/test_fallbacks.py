"""Without the compiled extension or Triton: import works, says once what it falls back to, same values."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys, warnings
if {block}:
    sys.modules["fastinit._C"] = None   # as if the extension was never built
    sys.modules["triton"] = None        # and Triton is not installed
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastinit
    import fastinit.init  # a second import path must not warn again
    import torch
    nn = torch.nn
    model = nn.Sequential(nn.Linear(40, 30), nn.LayerNorm(30), nn.Embedding(9, 5, padding_idx=1))
    fastinit.apply(model, seed=123)
    t = torch.empty(1001, dtype=torch.bfloat16)
    fastinit.init.trunc_normal_(t, std=0.5, seed=9, key=4)
fallback = [str(w.message) for w in caught if "falls back" in str(w.message) or "fall back" in str(w.message)]
print(json.dumps({{
    "backends": fastinit.backends(),
    "picked": [g.backend for g in fastinit.last_report()],
    "warnings": fallback,
    "values": [p.detach().double().sum().item() for p in model.parameters()] + [t.double().sum().item()],
    "bits": [p.detach().view(torch.int32).long().sum().item() for p in model.parameters()],
}}))
"""


def run(block: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("FASTINIT_QUIET", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(block=block)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_without_extension_or_triton_falls_back_and_says_so_once():
    bare = run(block=True)
    assert bare["backends"]["cpu"] and "fastinit._C" in bare["backends"]["cpu"]
    assert bare["backends"]["triton"] and "triton" in bare["backends"]["triton"].lower()
    assert bare["backends"]["cuda"]
    assert bare["backends"]["reference"] is None and bare["backends"]["torch"] is None
    assert bare["picked"] == ["reference"]
    assert len(bare["warnings"]) == 1 and "reference" in bare["warnings"][0]


def test_values_without_extension_equal_values_with_it():
    bare, full = run(block=True), run(block=False)
    assert bare["bits"] == full["bits"] and bare["values"] == full["values"]
    if full["backends"]["cpu"] is None:
        assert full["picked"] == ["cpu"] and full["warnings"] == []
