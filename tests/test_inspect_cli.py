"""``python -m fastinit explain|audit``: tables, exit status, module:callable models and policies, --plot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from fastinit.__main__ import main


def bad_model() -> nn.Module:
    """A model whose second layer was left scaled 3x (the module:callable the CLI tests load)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64))
    with torch.no_grad():
        m[1].weight.mul_(3)
    return m


def bf16_model() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 8, dtype=torch.bfloat16))


def tutorial_init(m: nn.Module) -> None:
    """A policy given as module:callable."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def test_explain_prints_the_plan(capsys):
    assert main(["explain", "--model", "gpt2-tiny", "--policy", "gpt2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["name", "shape", "dtype", "distribution"]
    rows = {line.split()[0]: line for line in out[2:]}
    assert "std=0.01" in rows["h.0.attn.c_proj.weight"] and "tied: lm_head.weight" in rows["wte.weight"]
    assert "lm_head.weight" not in rows


def test_explain_json_and_dtype(capsys):
    assert main(["explain", "--model", "llama-tiny", "--dtype", "bfloat16", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["dtype"] for r in rows if r["name"] != "inv_freq"} == {"bfloat16"}
    assert next(r for r in rows if r["name"] == "embed_tokens.weight")["distribution"] == "normal"


def test_audit_exit_status_and_module_callable(capsys):
    assert main(["audit", "--model", "llama-tiny"]) == 0  # torch's own init against "default"
    assert "0 FAIL" in capsys.readouterr().out
    assert main(["audit", "--model", "test_inspect_cli:bad_model"]) == 1
    out = capsys.readouterr().out
    assert "1 FAIL (1.weight)" in out.splitlines()[-1]
    assert main(["audit", "--model", "gpt2-tiny", "--policy", "test_inspect_cli:tutorial_init",
                 "--init", "fastinit", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| name |")


def test_a_users_model_keeps_its_dtype_unless_asked(capsys):
    assert main(["explain", "--model", "test_inspect_cli:bf16_model", "--json"]) == 0
    assert {r["dtype"] for r in json.loads(capsys.readouterr().out)} == {"bfloat16"}
    assert main(["explain", "--model", "test_inspect_cli:bf16_model", "--json", "--dtype", "float16"]) == 0
    assert {r["dtype"] for r in json.loads(capsys.readouterr().out)} == {"float16"}


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (scripts/setup.sh installs it)")
    path = tmp_path / "hist.png"
    assert main(["audit", "--model", "llama-tiny", "--plot", str(path), "--tensors", "*.up_proj.weight,embed_*"]) == 0
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert "(3 panels)" in capsys.readouterr().err
    path2 = tmp_path / "explain.png"
    assert main(["explain", "--model", "gpt2-tiny", "--plot", str(path2)]) == 0
    assert path2.read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)
    path = tmp_path / "hist.png"
    assert main(["audit", "--model", "llama-tiny", "--plot", str(path)]) == 2
    cap = capsys.readouterr()
    assert "pip install matplotlib" in cap.err and not path.exists()
    assert "0 FAIL" in cap.out  # the audit itself still ran


def test_plot_selection_largest_of_each_distribution():
    from fastinit.dryrun import dry_run
    from fastinit.models import construct
    from fastinit.plot import select

    chosen = select(dry_run(construct("gpt2-tiny"), "gpt2"))
    labels = [d.label() for _, d in chosen]
    assert sorted(labels) == sorted(set(labels)) == ["normal(mean=0, std=0.01)", "normal(mean=0, std=0.02)"]
    assert chosen[0][0].name == "wte.weight"  # the largest N(0, 0.02) tensor
    assert chosen[1][0].name == "h.0.mlp.c_proj.weight"


def test_python_dash_m_runs():
    r = subprocess.run([sys.executable, "-m", "fastinit", "explain", "--model", "gpt2-tiny", "--markdown"],
                       capture_output=True, text=True, env={"FASTINIT_QUIET": "1", "PATH": ""}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("| name |") and "wte.weight" in r.stdout
