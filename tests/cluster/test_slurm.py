"""A real single-node SLURM (.ci/slurm-up.sh): array-job shards and a SLURMCluster.

Skipped with the reason when no SLURM controller with an idle node answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.config import RunConfig
from geolabel.pipeline import run_predict

from .conftest import BATCH, Case, output_digests, requires_slurm, squares_case

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "configs" / "slurm" / "predict-array.sbatch"

pytestmark = requires_slurm


def _wait(job: str, timeout: float = 150.0) -> dict[str, tuple[str, str]]:
    """Poll until the array job has left the queue; ``task -> (state, exit code)``.

    (``sbatch --wait`` polls with a back-off that adds up to ~30 s here.)
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        q = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%i"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if q.returncode == 0 and not q.stdout.strip():
            break
        time.sleep(0.3)
    else:
        subprocess.run(["scancel", job], timeout=10)
        pytest.fail(f"array job {job} still queued after {timeout:g} s")
    info = subprocess.run(
        ["scontrol", "-o", "show", "job", job],
        capture_output=True,
        text=True,
        timeout=10,
    )
    out = {}
    for line in info.stdout.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        out[f.get("ArrayTaskId", "?")] = (
            f.get("JobState", "?"),
            f.get("ExitCode", "?"),
        )
    return out


def _array_job_then_finalize(
    tmp_path: Path, spec: Path, scene: Path, batch: int
) -> Path:
    """``predict-array.sbatch`` as a 4-task array job, then ``geolabel finalize``."""
    run = tmp_path / "run"
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "GEOLABEL": str(Path(sys.executable).parent / "geolabel"),
        "GEOLABEL_OPTS": f"--batch-size {batch}",
    }
    r = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--array=0-3",
            "--time=00:05:00",
            "--mem=1G",
            f"--output={logs}/%A_%a.out",
            str(SBATCH),
            str(run),
            str(spec),
            str(scene),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    states = _wait(r.stdout.strip().split(";")[0])
    out_logs = "\n".join(p.read_text() for p in sorted(logs.glob("*.out")))
    assert sorted(states) == ["0", "1", "2", "3"], states
    assert all(v == ("COMPLETED", "0:0") for v in states.values()), (
        f"{states}\n{out_logs}"
    )
    status = sorted(p.name for p in (run / "shards").glob("*.json"))
    assert status == [f"shard-{i:04d}-of-0004.json" for i in range(4)]
    assert all(
        json.loads((run / "shards" / s).read_text())["status"] == "done" for s in status
    )
    assert not (run / "run.json").exists()

    res = CliRunner().invoke(cli, ["-q", "finalize", str(run)])
    assert res.exit_code == 0, res.stderr
    return run


def test_array_job_of_four_shards_then_finalize_is_byte_identical(
    tmp_path: Path, small_case: Case
) -> None:
    run = _array_job_then_finalize(tmp_path, small_case.spec, small_case.scene, BATCH)
    assert output_digests(run) == output_digests(small_case.reference)


@pytest.mark.parametrize("task", ["detection", "classification"])
def test_object_tasks_as_an_array_job_give_the_bytes_of_one_run(
    tmp_path: Path, task: str
) -> None:
    scene, spec = squares_case(tmp_path, task)
    reference = tmp_path / "reference"
    one = run_predict(
        RunConfig(
            scenes=(str(scene),), model=str(spec), out=str(reference), batch_size=2
        )
    )
    assert one.ok, [s.error for s in one.scenes]
    run = _array_job_then_finalize(tmp_path, spec, scene, 2)
    assert output_digests(run) == output_digests(reference)


def test_dask_jobqueue_slurm_cluster_is_byte_identical(
    tmp_path: Path, small_case: Case
) -> None:
    pytest.importorskip("dask_jobqueue", reason="needs the [cluster] extra")
    logs = tmp_path / "worker-logs"
    shipped = yaml.safe_load((ROOT / "configs" / "cluster" / "slurm.yaml").read_text())
    conf = {
        **shipped,
        "jobs": 2,
        "cores": 1,
        "memory": "1GB",
        "walltime": "00:10:00",
        "local_directory": str(tmp_path / "spill"),
        "log_directory": str(logs),
        "python": sys.executable,
        "wait_timeout_s": 120,
        "scheduler_options": {"dashboard_address": ":0"},
    }
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(conf))
    run = tmp_path / "run"
    result = run_predict(small_case.config(run, cluster=f"slurm:{path}"))
    assert result.ok, [s.error for s in result.scenes]
    assert output_digests(run) == output_digests(small_case.reference)
    assert list(logs.glob("*.err")) or list(logs.glob("*.out")), (
        "workers ran as SLURM jobs"
    )
