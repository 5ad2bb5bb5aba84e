"""Worker jobs of a jobqueue cluster (issue 19 item 8): a warning with SLURM's reason
when they stay pending, cancelled on every way out, and dask's INFO logs kept off
stderr without -v. dask-jobqueue and the SLURM commands are replaced by fakes that
record what geolabel asks of them."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from geolabel.errors import ConfigError
from geolabel.execution import jobqueue, preempt


class _Job:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id


class _Cluster:
    """A SLURMCluster stand-in whose jobs never start (too big for the node)."""

    closed = 0

    def __init__(self, **kw: Any) -> None:
        self.kw = kw
        self.workers: dict[str, _Job] = {}

    def job_script(self) -> str:
        return "#!/bin/sh"

    def scale(self, jobs: int) -> None:
        self.workers = {f"w{i}": _Job(str(100 + i)) for i in range(jobs)}

    def close(self) -> None:
        type(self).closed += 1


class _Client:
    def __init__(self, cluster: _Cluster) -> None:
        self.cluster = cluster

    def wait_for_workers(self, n: int, timeout: float) -> None:
        raise TimeoutError

    def close(self) -> None:
        pass


@pytest.fixture
def fake_slurm(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Fake dask_jobqueue/distributed modules and scheduler commands; returns the calls."""
    monkeypatch.setitem(
        sys.modules, "dask_jobqueue", types.SimpleNamespace(SLURMCluster=_Cluster)
    )
    monkeypatch.setitem(
        sys.modules, "distributed", types.SimpleNamespace(Client=_Client)
    )
    calls: list[list[str]] = []

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        out = ""
        if cmd[0] == "squeue":
            out = "100 PENDING Resources\n101 PENDING Resources\n"
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(jobqueue.subprocess, "run", run)
    _Cluster.closed = 0
    return calls


def _config(tmp_path: Path, **extra: Any) -> Path:
    p = tmp_path / "slurm.yaml"
    lines = ["jobs: 2", "cores: 4", "memory: 8GB"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    p.write_text("\n".join(lines) + "\n")
    return p


def test_pending_jobs_warn_with_the_reason_then_fail_and_are_cancelled(
    tmp_path: Path, fake_slurm: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _config(tmp_path, wait_timeout_s=0.3, pending_warning_s=0.05)
    with (
        caplog.at_level(logging.WARNING, "geolabel.execution.jobqueue"),
        pytest.raises(ConfigError, match=r"no worker joined within 0\.3 s"),
    ):
        jobqueue.start_jobqueue_cluster("slurm", cfg)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "100 PENDING Resources" in warnings[0]
    assert "4 cores and 8GB" in warnings[0] and str(cfg) in warnings[0]
    assert ["squeue", "-h", "-j", "100,101", "-o", "%i %T %r"] in fake_slurm
    assert ["scancel", "100", "101"] in fake_slurm
    assert _Cluster.closed == 1
    assert not preempt.EXIT_HOOKS  # nothing left to cancel at exit


def test_jobs_are_cancelled_when_the_run_stops(
    tmp_path: Path, fake_slurm: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Client, "wait_for_workers", lambda self, n, timeout: None)
    cluster, client = jobqueue.start_jobqueue_cluster("slurm", _config(tmp_path))
    assert not any(c[0] == "scancel" for c in fake_slurm)
    (hook,) = preempt.EXIT_HOOKS  # the hard exit after SIGTERM cancels them too
    hook()
    assert fake_slurm[-1] == ["scancel", "100", "101"]
    jobqueue.stop_jobqueue_cluster("slurm", cluster, client)
    assert fake_slurm[-1] == ["scancel", "100", "101"] and _Cluster.closed == 1
    assert not preempt.EXIT_HOOKS


def test_dask_info_logs_stay_off_without_verbose() -> None:
    pytest.importorskip("distributed")
    from geolabel.cli.options import tame_dask_logging

    names = ("distributed", "dask_jobqueue")
    before = {n: logging.getLogger(n).level for n in names}
    try:
        tame_dask_logging(0)
        assert not logging.getLogger("distributed.scheduler").isEnabledFor(logging.INFO)
        assert not logging.getLogger("dask_jobqueue.core").isEnabledFor(logging.INFO)
        tame_dask_logging(1)
        assert logging.getLogger("distributed.deploy").isEnabledFor(logging.INFO)
    finally:
        for n, level in before.items():
            logging.getLogger(n).setLevel(level)
