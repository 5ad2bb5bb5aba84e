"""A real Label Studio server on 127.0.0.1 for the session (from .venv-ls), and helpers.

``scripts/setup_label_studio.sh`` (called by ``.ci/run``) installs Label Studio and
label-studio-sdk into ``.venv-ls`` and prepares a migrated data folder with the test
user; the fixture copies that folder and starts the server on a free port, waiting
at most ``START_TIMEOUT`` seconds for ``/health``. Without ``.venv-ls`` the server
tests skip with the reason. The server runs offline: no version check, analytics or
Sentry; it may call ML backends on 127.0.0.1 (SSRF protection off for the test only).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LS_VENV = ROOT / ".venv-ls"
TEMPLATE = LS_VENV / "template"
DRIVER = Path(__file__).with_name("ls_driver.py")
#: the user scripts/setup_label_studio.sh creates
LS_TOKEN = "geolabel0test0token0000000000000000000000"
START_TIMEOUT = 90.0
LS_ENV = {
    "LATEST_VERSION_CHECK": "false",
    "COLLECT_ANALYTICS": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "SSRF_PROTECTION_ENABLED": "false",
    "ML_BLOCK_LOCAL_IP": "false",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``{"url", "token", "startup_s"}`` of a fresh Label Studio server."""
    exe = LS_VENV / "bin" / "label-studio"
    if not exe.exists() or not (TEMPLATE / "label_studio.sqlite3").exists():
        pytest.skip(
            "Label Studio is not set up (.venv-ls or its template missing): "
            "run scripts/setup_label_studio.sh"
        )
    d = tmp_path_factory.mktemp("label-studio")
    data = d / "data"
    shutil.copytree(TEMPLATE, data)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | LS_ENV | {"LABEL_STUDIO_BASE_DATA_DIR": str(data)}
    log = open(d / "server.log", "w")  # noqa: SIM115 (closed at teardown)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(exe), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()

    while time.monotonic() - t0 < START_TIMEOUT and proc.poll() is None:
        if _healthy(url):
            break
        time.sleep(0.5)
    else:
        stop()
        tail = (d / "server.log").read_text()[-3000:]
        pytest.fail(
            f"Label Studio did not answer /health within {START_TIMEOUT} s:\n{tail}"
        )
    startup = time.monotonic() - t0
    try:
        yield {"url": url, "token": LS_TOKEN, "startup_s": round(startup, 1)}
    finally:
        stop()


def drive(command: str, args: dict[str, Any], tmp: Path, timeout: float = 120) -> None:
    """Run ``ls_driver.py COMMAND`` in .venv-ls with ``args`` (see that script)."""
    path = tmp / f"{command}-args.json"
    path.write_text(json.dumps(args))
    r = subprocess.run(
        [str(LS_VENV / "bin" / "python"), str(DRIVER), command, str(path)],
        capture_output=True, text=True, timeout=timeout, env=os.environ | LS_ENV,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="session")
def ls_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A toy-model run over a 48 x 80 scene and its Label Studio export (48-px chips)."""
    from click.testing import CliRunner

    from geolabel.cli.main import cli
    from geolabel.testing import make_scene, write_toy_spec

    d = tmp_path_factory.mktemp("ls-run")
    (d / "scenes").mkdir()
    scene = make_scene(d / "scenes" / "scene.tif", shape=(48, 80))
    spec = write_toy_spec(d / "toy.yaml", tile_size=40)
    run = d / "run"
    for args in (
        ["predict", str(scene), "-m", str(spec), "-o", str(run)],
        ["label-studio", "export", str(run), "-o", str(d / "ls"), "--chip-size", "48"],
    ):
        r = CliRunner().invoke(cli, ["-q", *args])
        assert r.exit_code == 0, r.output
    return {
        "dir": d,
        "scene": scene,
        "spec": spec,
        "run": run,
        "tasks": json.loads((d / "ls" / "tasks.json").read_text()),
        "config": (d / "ls" / "label_config.xml").read_text(),
    }
