"""The jobqueue YAML files: the shipped examples load, typos are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from geolabel.errors import ConfigError
from geolabel.execution.jobqueue import load_jobqueue_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_shipped_configs_load(kind: str) -> None:
    s = load_jobqueue_settings(ROOT / "configs" / "cluster" / f"{kind}.yaml")
    kw = s.cluster_kwargs(kind)  # type: ignore[arg-type]
    assert (
        kw["cores"] >= 1
        and kw["memory"]
        and "jobs" not in kw
        and "wait_timeout_s" not in kw
    )
    assert ("resource_spec" in kw) == (kind == "pbs" and s.resource_spec is not None)


def test_slurm_job_script_has_the_directives(tmp_path: Path) -> None:
    dask_jobqueue = pytest.importorskip(
        "dask_jobqueue", reason="needs the [cluster] extra"
    )
    p = tmp_path / "c.yaml"
    p.write_text(
        "cores: 2\nmemory: 3GB\nwalltime: '00:20:00'\nqueue: gpu\naccount: proj42\n"
        "job_extra_directives: ['--gres=gpu:1']\njob_name: glw\n"
    )
    kw = load_jobqueue_settings(p).cluster_kwargs("slurm")
    with dask_jobqueue.SLURMCluster(**kw) as cluster:
        script = cluster.job_script()
    for want in (
        "-p gpu",
        "-A proj42",
        "--gres=gpu:1",
        "-t 00:20:00",
        "--cpus-per-task=2",
        "-J glw",
    ):
        assert want in script, script


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cores: 2\nmemroy: 3GB\n", "memroy"),
        ("cores: 0\nmemory: 1GB\n", "cores"),
        ("- a\n- b\n", "mapping"),
        ("cores: [\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_file_and_key(
    tmp_path: Path, text: str, match: str
) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_jobqueue_settings(p)
    assert str(p) in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_jobqueue_settings(tmp_path / "missing.yaml")
