"""explain and audit on small transformers models with the "hf" policy (skipped without transformers)."""

from __future__ import annotations

import pytest
import torch
from test_explain import assert_untouched, executed_entries, planned_entries, snapshot
from test_hf import _models

import fastinit

pytest.importorskip("transformers")


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_hf_explain_is_a_dry_run_of_the_executed_plan_and_hf_init_passes_audit(name):
    cls, cfg = _models()[name]
    torch.manual_seed(0)
    model = cls(cfg)  # transformers' own init (post_init)
    flags = {n: m.__dict__.get("_is_hf_initialized") for n, m in model.named_modules()}
    snap = snapshot(model)
    report = fastinit.explain(model, "hf")
    assert_untouched(model, snap)
    assert flags == {n: m.__dict__.get("_is_hf_initialized") for n, m in model.named_modules()}  # reset, restored
    eager = fastinit.audit(model, "hf")
    assert eager.ok, [(r.name, r.reason) for r in eager.failed]
    # what stays unchecked is what HF computes rather than draws (rotary inv_freq), and it says so
    assert all("no spec" in r.reason for r in eager if r.verdict == "unchecked")
    with executed_entries() as seen:
        fastinit.apply(model, "hf", seed=1)
    assert planned_entries(report) == seen
    assert fastinit.audit(model, "hf").ok
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(3)
    assert fastinit.audit(model, "hf").failed
