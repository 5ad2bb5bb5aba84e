"""Detection and tile classification go through the same scene runner as segmentation.

The same checks as tests/resume and tests/cluster, for the object tasks: SIGKILL
mid-run then resume (byte-identical GeoPackages, only unfinished tiles redone),
SIGTERM (exit 75, whole batches kept, resume), array-job shards then ``finalize``,
the circuit breaker, and ``--tile-size`` other than the spec's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.config import RunConfig
from geolabel.execution.preempt import PREEMPTED_EXIT
from geolabel.pipeline import finalize_run, run_predict
from geolabel.testing import make_scene
from geolabel.testing.detectors import draw_square, write_square_detector_spec

from ..cluster.conftest import done_rows, output_digests

TILE, OVERLAP, BATCH = 48, 10, 2  # 4 x 4 tiles of 28-px cores: 8 batches
TASKS = ("detection", "classification")
TRANSFORM = Affine(2.0, 0.0, 400000.0, 0.0, -2.0, 3000000.0)


def _scene(path: Path) -> Path:
    img = np.zeros((3, 90, 101), np.float32)
    for r, c, side, label, score in [
        (5, 23, 10, 0, 0.9),
        (23, 5, 10, 1, 0.5),
        (51, 51, 10, 0, 0.65),
        (35, 33, 8, 1, 0.2),
        (80, 92, 9, 0, 0.95),
    ]:
        draw_square(img, r, c, side, label=label, score=score)
    return make_scene(
        path, data=img, transform=TRANSFORM, crs="EPSG:32633", nodata=-1.0
    )


def _spec(path: Path, task: str, **kw: object) -> Path:
    return write_square_detector_spec(
        path, tile_size=TILE, overlap=OVERLAP, task=task, **kw
    )


def _config(scene: Path, spec: Path, out: Path, **kw: object) -> RunConfig:
    return RunConfig(
        scenes=(str(scene),), model=str(spec), out=str(out), batch_size=BATCH, **kw
    )  # type: ignore[arg-type]


class Case:
    """A scene, a spec per task and the GeoPackages of an uninterrupted run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scene = _scene(root / "squares.tif")
        self.reference: dict[str, dict[str, str]] = {}
        for task in TASKS:
            res = run_predict(
                _config(self.scene, self.spec(task), root / f"ref-{task}")
            )
            assert res.ok, res.scenes[0].error
            self.reference[task] = output_digests(root / f"ref-{task}")
            assert self.reference[task]

    def spec(self, task: str, **kw: object) -> Path:
        """The task's spec (``kw``: slow or failing variants, same model id)."""
        name = "-".join([task, *sorted(kw)])
        return _spec(self.root / f"{name}.yaml", task, **kw)

    def command(self, task: str, out: Path) -> list[str]:
        """``geolabel predict`` with the slow spec (0.25 s a batch)."""
        return [
            sys.executable,
            "-c",
            "from geolabel.cli.main import main; main()",
            "-q",
            "predict",
            str(self.scene),
            "-m",
            str(self.spec(task, sleep=0.25)),
            "-o",
            str(out),
            "--batch-size",
            str(BATCH),
        ]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """Reference runs shared by the tests of this module."""
    return Case(tmp_path_factory.mktemp("object-runner"))


def _start_and_signal(
    case: Case, task: str, out: Path, sig: int, after: int
) -> subprocess.Popen[str]:
    """Start predict and send ``sig`` once ``after`` tiles are recorded done."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        case.command(task, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    try:
        while sum(done_rows(out).values()) < after:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.01)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc


@pytest.mark.parametrize("task", TASKS)
def test_sigkill_mid_run_then_resume_gives_the_same_bytes(
    case: Case, tmp_path: Path, task: str
) -> None:
    out = tmp_path / "run"
    proc = _start_and_signal(case, task, out, signal.SIGKILL, after=4)
    assert proc.returncode == -signal.SIGKILL
    kept = set(done_rows(out))
    assert 4 <= len(kept) < 16 and not any(out.rglob("*.gpkg"))
    again = run_predict(_config(case.scene, case.spec(task, sleep=0.25), out))
    assert again.ok and again.scenes[0].tiles_run == 16 - len(kept)
    assert set(done_rows(out).values()) == {1}, "finished tiles were redone"
    assert output_digests(out) == case.reference[task]


@pytest.mark.parametrize("task", TASKS)
def test_sigterm_keeps_whole_batches_exits_75_and_resumes(
    case: Case, tmp_path: Path, task: str
) -> None:
    out = tmp_path / "run"
    t0 = time.monotonic()
    proc = _start_and_signal(case, task, out, signal.SIGTERM, after=2)
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == PREEMPTED_EXIT, err
    assert time.monotonic() - t0 < 40
    assert "geolabel: preempted:" in err and "Traceback" not in err
    kept = set(done_rows(out))
    assert 0 < len(kept) < 16 and len(kept) % BATCH == 0, "whole batches are kept"
    assert not (out / "run.json").exists() and not any(out.rglob("*.gpkg"))
    again = run_predict(_config(case.scene, case.spec(task, sleep=0.25), out))
    assert again.ok and again.scenes[0].tiles_run == 16 - len(kept)
    assert output_digests(out) == case.reference[task]


@pytest.mark.parametrize("task", TASKS)
def test_shards_then_finalize_match_a_single_run(
    case: Case, tmp_path: Path, task: str
) -> None:
    run = tmp_path / "run"
    spec = case.spec(task)
    first = run_predict(_config(case.scene, spec, run, shard="0/3"))
    assert first.ok and first.scenes[0].tiles_run == 6  # batches 0-2 of 8
    assert not any(run.rglob("*.gpkg")), "a shard must not finalize"
    check, result = finalize_run(run)
    assert result is None and check.missing_shards == [1, 2]
    for i in (1, 2):
        assert run_predict(_config(case.scene, spec, run, shard=f"{i}/3")).ok
    manifests = sorted(p.name for p in run.rglob("manifest/*.jsonl"))
    assert manifests == [f"shard-000{i}-of-0003.jsonl" for i in range(3)]
    check, result = finalize_run(run)
    assert check.ready and result is not None and result.ok
    assert result.scenes[0].tiles_run == 0
    assert output_digests(run) == case.reference[task]


def test_open_circuit_stops_the_scene_then_resume_finishes(
    case: Case, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    broken = case.spec("detection", open_circuit_on=["r00001c00001"])
    first = run_predict(_config(case.scene, broken, run))
    scene = first.scenes[0]
    assert scene.status == "incomplete" and "CircuitOpenError" in (scene.error or "")
    # batch 2 (tiles r1c0, r1c1 of 4 x 4) opened the circuit: nothing after it ran
    assert sorted(t.split("/")[-1] for t in done_rows(run)) == [
        f"r00000c0000{c}" for c in range(4)
    ]
    assert len(scene.failed_tiles) == BATCH and not any(run.rglob("*.gpkg"))
    again = run_predict(
        _config(case.scene, case.spec("detection"), run, retry_failed=True)
    )
    assert again.ok and again.scenes[0].tiles_run == 12
    assert output_digests(run) == case.reference["detection"]


@pytest.mark.parametrize("task", TASKS)
def test_tile_size_other_than_the_specs(case: Case, tmp_path: Path, task: str) -> None:
    res = run_predict(
        _config(case.scene, case.spec(task), tmp_path / "run", tile_size=40)
    )
    assert res.ok, res.scenes[0].error
    assert res.scenes[0].info["tile_size"] == (40, 40)
    if task == "detection":
        det = gpd.read_file(res.scenes[0].outputs["detections"], layer="detections")
        ref = gpd.read_file(
            case.root / "ref-detection" / "squares" / "squares_detections.gpkg",
            layer="detections",
        )
        cols = ["xmin", "ymin", "xmax", "ymax"]
        np.testing.assert_array_equal(
            det.sort_values(cols)[cols].to_numpy(),
            ref.sort_values(cols)[cols].to_numpy(),
        )
    else:
        tiles = gpd.read_file(res.scenes[0].outputs["tiles"], layer="tiles")
        assert tiles.geometry.area.sum() == pytest.approx(90 * 101 * 4.0)


def test_tile_size_of_a_fixed_size_model_is_refused_in_one_line(
    case: Case, tmp_path: Path
) -> None:
    spec = case.spec("detection", fixed_size=True)
    args = ["predict", str(case.scene), "-m", str(spec), "-o", str(tmp_path / "r")]
    r = CliRunner().invoke(cli, ["-q", *args, "--tile-size", "40"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "takes only 48 x 48 tiles" in lines[0]
    assert not (tmp_path / "r").exists()
