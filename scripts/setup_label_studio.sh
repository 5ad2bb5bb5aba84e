#!/usr/bin/env bash
# Idempotent: a SEPARATE virtual environment .venv-ls with the Label Studio server and its
# SDK, for tests/exchange/test_label_studio_server.py. Label Studio (Django) pins many
# packages of its own; keeping it out of .venv means its pins never fight geolabel's.
# The tests skip with the reason when .venv-ls is missing or broken.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want="label-studio==1.23.2 label-studio-sdk==2.1.2"
stamp=.venv-ls/.geolabel-ls-installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x .venv-ls/bin/python ]; then
  "$PY" -m venv .venv-ls
fi
# shellcheck disable=SC2086
.venv-ls/bin/python -m pip install --quiet --disable-pip-version-check $want 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv-ls/bin/python -c "import label_studio, label_studio_sdk"
echo "$want" > "$stamp"
