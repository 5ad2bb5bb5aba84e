"""The run folder: one writer at a time, finished outputs never rewritten, damaged
store chunks recomputed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.io.runlock import LOCK_NAME, run_folder_lock
from geolabel.testing import make_scene, toy_spec


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    return r.exit_code, r.stdout, r.stderr


def test_second_writer_is_refused_by_pid_and_host(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    args = ("predict", str(scene_path), "-m", str(toy_spec_path), "-o", str(run))
    with run_folder_lock(run):
        code, _, err = _run(*args)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (
        f"geolabel: error: {run}: in use by PID {os.getpid()} on "
        f"{socket.gethostname()} since " + err.split(" since ")[1].strip()
    )
    assert not (run / scene_path.stem).exists()
    code, _, err = _run(*args)  # released: runs
    assert code == 0, err


def test_two_processes_on_one_run_folder(tmp_path: Path) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(yaml.safe_dump(toy_spec(tile_size=64, sleep=0.3)))
    scene = make_scene(tmp_path / "a.tif", shape=(200, 200))
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", "from geolabel.cli.main import main; main()", "-q"]
    args = ["predict", str(scene), "-m", str(spec), "-o", str(run), "--batch-size", "1"]
    first = subprocess.Popen([*cmd, *args], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            (run / LOCK_NAME).exists() and (run / LOCK_NAME).read_text()
        ):
            time.sleep(0.05)
        second = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2, second.stderr
        assert f"in use by PID {first.pid} on {socket.gethostname()}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err


def test_finished_run_is_not_rewritten(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    run = tmp_path / "run"
    args = ("predict", str(scene_path), "-m", str(toy_spec_path), "-o", str(run))
    code, out, err = _run(*args)
    assert code == 0, err
    files = [p for p in run.rglob("*") if p.is_file() and p.name != LOCK_NAME]
    before = {p: p.stat().st_mtime_ns for p in files}
    for p in run.rglob("*"):  # a read-only copy of a finished run
        p.chmod(p.stat().st_mode & ~0o222)
    run.chmod(0o555)
    try:
        code, out2, err = _run(*args)
    finally:
        run.chmod(0o755)
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert (
        json.loads(out2)["scenes"][0]["outputs"]
        == json.loads(out)["scenes"][0]["outputs"]
    )
