"""Preemption: SIGTERM to a real `geolabel predict` process, then the same command resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from geolabel.execution.preempt import PREEMPTED_EXIT

from .conftest import BATCH, Case, done_rows, output_digests


def test_sigterm_records_finished_batches_exits_75_and_resumes(
    tmp_path: Path, small_case: Case
) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-c",
        "from geolabel.cli.main import main; main()",
        "-q",
        "predict",
        str(small_case.scene),
        "-m",
        str(small_case.spec),
        "-o",
        str(run),
        "--batch-size",
        str(BATCH),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while (
            not set(done_rows(run))
            and time.monotonic() < deadline
            and proc.poll() is None
        ):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        assert set(done_rows(run)), "no batch recorded within 60 s"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == PREEMPTED_EXIT, err
    assert elapsed < 30
    assert "geolabel: preempted:" in err and "re-run the same command to resume" in err
    assert "Traceback" not in err
    kept = set(done_rows(run))
    assert 0 < len(kept) < 20 and len(kept) % BATCH == 0, "whole batches are kept"
    assert not (run / "run.json").exists() and not any(run.rglob("*.tif"))

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    doc = json.loads((run / "run.json").read_text())
    assert doc["scenes"][0]["tiles_run"] == 20 - len(kept)
    assert output_digests(run) == output_digests(small_case.reference)
