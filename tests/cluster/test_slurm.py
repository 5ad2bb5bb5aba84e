"""A real single-node SLURM (.ci/slurm-up.sh): array-job shards and a SLURMCluster.

Skipped with the reason when no SLURM controller with an idle node answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.pipeline import run_predict

from .conftest import BATCH, Case, output_digests, requires_slurm

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "configs" / "slurm" / "predict-array.sbatch"

pytestmark = requires_slurm


def test_array_job_of_four_shards_then_finalize_is_byte_identical(tmp_path: Path, small_case: Case) -> None:
    run = tmp_path / "run"
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "GEOLABEL": str(Path(sys.executable).parent / "geolabel"),
           "GEOLABEL_OPTS": f"--batch-size {BATCH}"}
    r = subprocess.run(
        ["sbatch", "--wait", "--array=0-3", "--time=00:05:00", "--mem=1G",
         f"--output={logs}/%A_%a.out", str(SBATCH), str(run), str(small_case.spec), str(small_case.scene)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    out_logs = "\n".join(p.read_text() for p in sorted(logs.glob("*.out")))
    assert r.returncode == 0, r.stderr + out_logs
    status = sorted(p.name for p in (run / "shards").glob("*.json"))
    assert status == [f"shard-{i:04d}-of-0004.json" for i in range(4)]
    assert all(json.loads((run / "shards" / s).read_text())["status"] == "done" for s in status)
    assert not (run / "run.json").exists()

    res = CliRunner().invoke(cli, ["-q", "finalize", str(run)])
    assert res.exit_code == 0, res.stderr
    assert output_digests(run) == output_digests(small_case.reference)


def test_dask_jobqueue_slurm_cluster_is_byte_identical(tmp_path: Path, small_case: Case) -> None:
    pytest.importorskip("dask_jobqueue", reason="needs the [cluster] extra")
    logs = tmp_path / "worker-logs"
    shipped = yaml.safe_load((ROOT / "configs" / "cluster" / "slurm.yaml").read_text())
    conf = {**shipped, "jobs": 2, "cores": 1, "memory": "1GB", "walltime": "00:10:00",
            "local_directory": str(tmp_path / "spill"), "log_directory": str(logs),
            "python": sys.executable, "wait_timeout_s": 120}
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(conf))
    run = tmp_path / "run"
    result = run_predict(small_case.config(run, cluster=f"slurm:{path}"))
    assert result.ok, [s.error for s in result.scenes]
    assert output_digests(run) == output_digests(small_case.reference)
    assert list(logs.glob("*.err")) or list(logs.glob("*.out")), "workers ran as SLURM jobs"
