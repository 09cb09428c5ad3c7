"""The main job's command line works end to end (on a tiny model): table, JSON, every row."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    return {**os.environ, "FASTINIT_QUIET": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_bench_cli_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "r.json"
    env = _env()
    # auto named twice: one row, timed once per repeat (the per-repeat ratios below pair its times with torch's)
    proc = subprocess.run([sys.executable, "-m", "fastinit", "bench", "--model", "gpt2-tiny", "--repeats", "2",
                           "--backend", "auto,reference,auto", "--json", str(out)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| fastinit (auto) → " in proc.stdout and "| torch.nn.init loop |" in proc.stdout
    res = json.loads(out.read_text())
    names = [r["name"] for r in res["rows"]]
    assert names == ["first touch (fill_ on fresh memory)", "fastinit (auto)", "fastinit (reference)",
                     "torch.nn.init loop", "fill_ (bandwidth ceiling)"]
    assert res["param_bytes"] > 0 and all(r["median_s"] > 0 and len(r["times"]) >= 1 for r in res["rows"])
    torch_row = next(r for r in res["rows"] if r["name"] == "torch.nn.init loop")
    assert torch_row["speedup_vs_torch"] == 1.0
    assert res["rows"][2]["backends_used"] == ["reference"]
    # each timed row has one time per repeat (the rows are interleaved), and its per-repeat range is the lowest and
    # highest of torch's time over its own within one repeat
    for r in res["rows"][1:]:
        assert len(r["times"]) == 2
        paired = [t / x for t, x in zip(torch_row["times"], r["times"])]
        assert r["speedup_vs_torch_per_repeat"] == [min(paired), max(paired)]
    assert "speedup_vs_torch_per_repeat" not in res["rows"][0]


def test_bench_help_and_unknown_model():
    env = _env()
    ok = subprocess.run([sys.executable, "-m", "fastinit", "bench", "--help"], env=env, capture_output=True, text=True,
                        check=False)
    assert ok.returncode == 0 and "--model" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "fastinit", "bench", "--model", "nope"], env=env, capture_output=True,
                         text=True, check=False)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
