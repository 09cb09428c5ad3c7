"""bench/hot_loop_spills.py reads the built extension's hot loops: each float32 step's loop stores exactly its output.

The output-store count is a property the parser can get wrong (a loop body cut at the wrong jump, a store missed or a
stack store counted as output): a float32 step of E elements writes E * 4 bytes, one store per vector width.
"""

import glob
import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SO = sorted(glob.glob(str(ROOT / "fastinit" / "_C*.so")))

pytestmark = [pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed"),
              pytest.mark.skipif(not SO, reason="the C++ extension is not built in this checkout")]


def _script():
    spec = importlib.util.spec_from_file_location("hot_loop_spills", ROOT / "bench" / "hot_loop_spills.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_float32_steps_store_exactly_their_output():
    mod = _script()
    seen = 0
    for match, width in (("quads_avx2If", 32), ("quads512If", 64)):
        for name, lines in mod.functions(SO[0], match).items():
            m = mod._STEP.search(name)
            nv, streaming = int(m.group(3)), m.group(4) == "1"
            if nv == 1 or not streaming:  # the one-vector tail loops are short and may be unrolled differently
                continue
            per_step = (16 if "avx2" in name else 32) * nv
            c = mod.count(mod.hot_loop(lines))
            assert c["output_stores"] == per_step * 4 // width, (name, c)
            assert c["instructions"] > 100 and c["stack_stores"] <= c["instructions"]
            seen += 1
    assert seen >= 8  # the uniform and normal variants of both paths


def test_cli_prints_a_row_per_step(capsys):
    assert _script().main(["--so", SO[0]]) == 0
    out = capsys.readouterr().out
    assert "| avx2 f V=1 NV=4 NT=1 | 64 |" in out and "| avx512 f V=1 NV=6 NT=1 | 192 |" in out
