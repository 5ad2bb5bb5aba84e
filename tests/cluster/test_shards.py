"""Array-job shards without a scheduler: partition, status files, finalize, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from geolabel.cli.main import cli
from geolabel.errors import ConfigError
from geolabel.execution.shards import Shard, resolve_shard_option, shard_batches

from .conftest import BATCH, Case, output_digests


def _cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    return r.exit_code, r.stdout, r.stderr


def _predict(case: Case, out: Path, *extra: str) -> tuple[int, str, str]:
    return _cli(
        "predict",
        str(case.scene),
        "-m",
        str(case.spec),
        "-o",
        str(out),
        "--batch-size",
        str(BATCH),
        *extra,
    )


@given(n=st.integers(0, 60), count=st.integers(1, 12))
def test_shards_partition_the_batches_in_order(n: int, count: int) -> None:
    batches = list(range(n))
    parts = [shard_batches(batches, Shard(i, count)) for i in range(count)]
    assert [
        b for p in parts for b in p
    ] == batches  # disjoint, complete, contiguous, ordered
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_shard_option_parsing() -> None:
    assert resolve_shard_option("2/4") == "2/4"
    assert (
        resolve_shard_option(
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "5",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "3",
            },
        )
        == "2/4"
    )
    assert Shard.parse("3/16").name == "shard-0003-of-0016"
    for bad in ("4/4", "-1/4", "1/0", "one/two", "1"):
        with pytest.raises(ConfigError, match="--shard"):
            resolve_shard_option(bad)
    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK_ID"):
        resolve_shard_option("auto", {})


def test_shard_errors_are_one_line(tmp_path: Path, small_case: Case) -> None:
    code, _, err = _predict(small_case, tmp_path / "r", "--shard", "auto")
    assert (
        code == 2
        and err.startswith("geolabel: error: --shard auto:")
        and "Traceback" not in err
    )
    code, _, err = _predict(small_case, tmp_path / "r", "--shard", "0/2", "--overwrite")
    assert code == 2 and "--overwrite" in err
    code, _, err = _cli("finalize", str(tmp_path / "nothing"))
    assert code == 2 and "no shard status files" in err


def test_four_shards_then_finalize_match_a_single_run(
    tmp_path: Path, small_case: Case
) -> None:
    run = tmp_path / "run"
    for i in (0, 1, 3):
        code, _, err = _predict(small_case, run, "--shard", f"{i}/4")
        assert code == 0, err
    assert not (run / "run.json").exists()
    assert not any(run.rglob("*.tif")), "a shard must not finalize"
    status = json.loads((run / "shards" / "shard-0001-of-0004.json").read_text())
    assert status["status"] == "done" and status["config"]["shard"] == "1/4"
    manifests = sorted(p.name for p in run.rglob("manifest/*.jsonl"))
    assert manifests == [
        "shard-0000-of-0004.jsonl",
        "shard-0001-of-0004.jsonl",
        "shard-0003-of-0004.jsonl",
    ]

    code, out, err = _cli("finalize", str(run))
    assert code == 1 and "shard(s) 2: missing of 4" in err
    report = json.loads(out)
    assert report["ready"] is False and report["missing_shards"] == [2]
    scene = report["scenes"][0]
    # 10 batches of 2 tiles over 4 shards: shard 2 owns batches 5..7 (k*4//10 == 2)
    assert len(scene["missing"]) == 6 and list(scene["missing_by_shard"]) == ["2"]
    assert not (run / "run.json").exists() and not any(run.rglob("*.tif"))

    code, _, err = _predict(small_case, run, "--shard", "2/4")
    assert code == 0, err
    code, out, err = _cli("finalize", str(run))
    assert code == 0, err
    assert output_digests(run) == output_digests(small_case.reference)
    doc = json.loads((run / "run.json").read_text())
    assert doc["scenes"][0]["status"] == "done" and doc["scenes"][0]["tiles_run"] == 0
