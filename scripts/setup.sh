#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with geolabel (editable) and the
# extras the demo and the tests need. Re-running is quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.geolabel-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # torch is pinned (==) in the [torch] extra so pip takes the local CPU wheel.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[torch,csmask,viz,dev,cluster]" 2>&1 \
    | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import geolabel, torch, onnxruntime, ukis_csmask" 
  echo "$want" > "$stamp"
fi
