#!/usr/bin/env bash
# Build .venv-torchgeo: a separate environment for the naive torchgeo baseline of
# benchmarks/bench_predict.py. torchgeo 0.8.1 needs torch 2.14.1 + torchvision 0.29.1,
# which cannot live in .venv (torch is pinned there). Idempotent: does nothing when the
# environment already imports torchgeo at the wanted version.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TORCHGEO_VENV:-.venv-torchgeo}"
PY="${PYTHON:-python3}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c \
    'import torchgeo, sys; sys.exit(0 if torchgeo.__version__ == "0.8.1" else 1)' 2>/dev/null; then
  echo "$VENV: torchgeo 0.8.1 ready"
  exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1" "torchgeo==0.8.1" \
  requests safetensors psutil
"$VENV/bin/python" -c 'import torchgeo, torch; print("torchgeo", torchgeo.__version__, "torch", torch.__version__)'
