#!/usr/bin/env bash
# Idempotent: a SEPARATE virtual environment .venv-ls with the Label Studio server and its
# SDK, for tests/exchange/test_label_studio_server.py. Label Studio (Django) pins many
# packages of its own; keeping it out of .venv means its pins never fight geolabel's.
# It also prepares .venv-ls/template/: a migrated Label Studio data folder with the test
# user and its API token, which the tests copy, so a server starts in ~15 s instead of
# ~70 s of migrations. Measured on the 2-core build machine: install 128 s (1.0 GB),
# template 86 s (both niced, machine shared). The tests skip with the reason when either is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want="label-studio==1.23.2 label-studio-sdk==2.1.2"
stamp=.venv-ls/.geolabel-ls-installed
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if [ ! -x .venv-ls/bin/python ]; then
    "$PY" -m venv .venv-ls
  fi
  # shellcheck disable=SC2086
  .venv-ls/bin/python -m pip install --quiet --disable-pip-version-check $want 2>&1 \
    | grep -v "^WARNING: Location" || true
  .venv-ls/bin/python -c "import label_studio, label_studio_sdk"
  rm -rf .venv-ls/template
  echo "$want" > "$stamp"
fi
if [ ! -f .venv-ls/template/label_studio.sqlite3 ]; then
  tmp=.venv-ls/template.partial
  rm -rf "$tmp" && mkdir -p "$tmp"
  manage=$(.venv-ls/bin/python -c "import label_studio, os; print(os.path.join(os.path.dirname(label_studio.__file__), 'manage.py'))")
  export LABEL_STUDIO_BASE_DATA_DIR="$PWD/$tmp"
  # offline: no version check against the package index, no analytics, no Sentry
  export LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false SENTRY_DSN= FRONTEND_SENTRY_DSN=
  .venv-ls/bin/python "$manage" migrate --no-color -v 0 >/dev/null
  # the user of tests/exchange/conftest.py (LS_USER, LS_TOKEN), legacy token auth on
  .venv-ls/bin/python "$manage" shell -c "
import argparse
from label_studio.server import _create_user
_create_user(argparse.Namespace(username='geolabel@example.com', password='geolabel-test',
    user_token='geolabel0test0token0000000000000000000000', quiet_mode=True,
    enable_legacy_api_token=True), {})
" >/dev/null 2>&1
  mv "$tmp" .venv-ls/template
fi
