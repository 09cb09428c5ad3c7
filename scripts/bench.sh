#!/usr/bin/env bash
# The main job: set up, then initialize a GPT-2-XL-shaped model (1.56 B parameters, float32, CPU)
# with fastinit and with torch.nn.init, and print the comparison table. Extra arguments go to
# `python -m fastinit bench` (e.g. --small, --dtype bfloat16, --policy gpt2, --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec "${PYTHON:-python3}" -m fastinit bench --progress "$@"
