"""``geolabel loop``: two rounds end to end, every model version kept, kill -9 survived."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.loop import LoopConfig, run_loop
from geolabel.testing import make_scene

from .._models import write_tiny_unet

pytest.importorskip("torch")

GEOLABEL = Path(sys.executable).parent / "geolabel"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A two-class scene (dark left, bright right), an untrained tiny U-Net spec."""
    d = tmp_path_factory.mktemp("loop")
    rng = np.random.default_rng(1)
    h, w = 64, 80
    truth = np.zeros((h, w), np.uint8)
    truth[:, 40:] = 1
    data = np.where(truth, 150.0, 50.0)[None] + rng.normal(0, 8, (3, h, w))
    scene = make_scene(d / "scene.tif", data=data.astype(np.float32))
    write_tiny_unet(d, tile_size=32, receptive_field=9, overlap=4)
    with rasterio.open(scene) as src:
        t = src.transform
    return {"dir": d, "scene": scene, "spec": d / "base.yaml", "transform": t}


#: label boxes (rows, cols) and classes, added to the labels file a few at a time
BOXES = [
    ((5, 5, 20, 30), "dark"),
    ((5, 50, 20, 75), "bright"),
    ((40, 5, 60, 30), "dark"),
    ((40, 50, 60, 75), "bright"),
    ((25, 10, 35, 35), "dark"),
]


def write_labels(world: dict[str, Any], path: Path, n: int) -> None:
    t = world["transform"]
    geoms, names = [], []
    for (r0, c0, r1, c1), name in BOXES[:n]:
        (x0, y0), (x1, y1) = t @ (c0, r0), t @ (c1, r1)
        geoms.append(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        names.append(name)
    gdf = gpd.GeoDataFrame({"label": names}, geometry=geoms, crs="EPSG:32633")
    tmp = path.with_name("tmp-" + path.name)
    pyogrio.write_dataframe(gdf, tmp, layer="labels")
    os.replace(tmp, path)


def _check_finished(out: Path, rounds: int) -> dict[str, Any]:
    doc = json.loads((out / "loop.json").read_text())
    rs = doc["rounds"]
    assert [r["index"] for r in rs] == list(range(rounds + 1))
    assert all(r["trained"] and r["predicted"] and r["prioritized"] for r in rs)
    assert [r["model_id"] for r in rs] == [f"tiny@1.{k}" for k in range(rounds + 1)]
    for r in rs:
        assert (Path(r["run"]) / "scene" / "scene_mask.tif").exists()
        assert Path(r["queue"]).exists() and r["queued"] > 0
        assert Path(r["model"]).exists()
        assert 0 <= r["predict_metrics"]["mean_uncertainty"] <= 1
    for r in rs[1:]:  # every model version kept, with its metrics
        assert Path(r["model"]).with_suffix(".safetensors").exists()
        (m,) = r["train_metrics"]["scenes"]
        assert m["labelled_pixels"] > 0 and "train_miou" in m
        spec = yaml.safe_load(Path(r["model"]).read_text())
        assert spec["version"] == r["model_id"].split("@")[1]
    labels = [r["labels_at_start"] for r in rs]
    assert all(b - a >= 2 for a, b in itertools.pairwise(labels))
    return doc


def test_two_rounds_end_to_end(world: dict[str, Any], tmp_path: Path) -> None:
    labels = tmp_path / "labels.gpkg"
    write_labels(world, labels, 1)
    given = iter([3, 5])
    polls: list[int] = []

    def labeller(_seconds: float) -> None:  # a person labelling while the loop waits
        polls.append(1)
        write_labels(world, labels, next(given))

    events: list[dict[str, Any]] = []
    result = run_loop(
        LoopConfig(
            scenes=(str(world["scene"]),),
            model=str(world["spec"]),
            labels=str(labels),
            out=str(tmp_path / "loop"),
            every=2,
            rounds=2,
            budget=5,
            steps=5,
            chip_size=32,
            batch_size=2,
            poll=0.01,
        ),
        emit=events.append,
        sleep=labeller,
    )
    assert result.status == "done" and result.labels == 5
    assert len(polls) == 2
    steps = [(e["round"], e["step"]) for e in events if "step" in e]
    assert steps == [
        (0, "predicted"),
        (0, "prioritized"),
        (1, "trained"),
        (1, "predicted"),
        (1, "prioritized"),
        (2, "trained"),
        (2, "predicted"),
        (2, "prioritized"),
    ]
    doc = _check_finished(tmp_path / "loop", 2)
    # the fine-tuned model changed the predictions
    with rasterio.open(
        Path(doc["rounds"][0]["run"]) / "scene/scene_probabilities.tif"
    ) as a:
        p0 = a.read()
    with rasterio.open(
        Path(doc["rounds"][2]["run"]) / "scene/scene_probabilities.tif"
    ) as b:
        p2 = b.read()
    assert not np.allclose(p0, p2)
    # run again: nothing to do, nothing rewritten
    mtime = (
        Path(doc["rounds"][1]["model"]).with_suffix(".safetensors").stat().st_mtime_ns
    )
    again = run_loop(
        LoopConfig(
            scenes=(str(world["scene"]),),
            model=str(world["spec"]),
            labels=str(labels),
            out=str(tmp_path / "loop"),
            every=2,
            rounds=2,
            budget=5,
        ),
        sleep=labeller,
    )
    assert again.status == "done"
    assert (
        Path(doc["rounds"][1]["model"]).with_suffix(".safetensors").stat().st_mtime_ns
        == mtime
    )


def _loop_cmd(world: dict[str, Any], labels: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(GEOLABEL), "-q", "loop", str(world["scene"]), "-m", str(world["spec"]),
        "--labels", f"{labels}:labels", "-o", str(out), "--every", "2",
        "-n", "5", "--steps", "5", "--threads", "1", *extra,
    ]  # fmt: skip


def _wait_for(pred: Any, proc: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            pytest.fail(
                f"loop exited early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"condition not met within {seconds} s")


def _rounds(out: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((out / "loop.json").read_text())["rounds"]
    except (OSError, ValueError):
        return []


def test_kill_9_between_rounds_resumes(world: dict[str, Any], tmp_path: Path) -> None:
    labels, out = tmp_path / "labels.gpkg", tmp_path / "loop"
    write_labels(world, labels, 1)
    cmd = _loop_cmd(world, labels, out, "--rounds", "1")
    proc = subprocess.Popen(
        [*cmd, "--poll", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:  # round 0 done, the loop polls the labels file: kill -9 it there
        _wait_for(lambda: any(r["prioritized"] for r in _rounds(out)), proc, 120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    mask0 = out / "rounds" / "r000" / "scene" / "scene_mask.tif"
    t0 = mask0.stat().st_mtime_ns
    write_labels(world, labels, 3)
    done = subprocess.run(
        [*cmd, "--no-wait"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(ln) for ln in done.stdout.splitlines()]
    # round 0 is not redone; round 1 runs whole
    assert [(e["round"], e["step"]) for e in lines if "step" in e] == [
        (1, "trained"),
        (1, "predicted"),
        (1, "prioritized"),
    ]
    assert lines[-1]["status"] == "done"
    _check_finished(out, 1)
    assert mask0.stat().st_mtime_ns == t0


def test_stops_when_it_would_wait_and_refuses_another_loop(
    world: dict[str, Any], tmp_path: Path
) -> None:
    labels, out = tmp_path / "labels.gpkg", tmp_path / "loop"
    cfg = dict(
        scenes=(str(world["scene"]),), model=str(world["spec"]), labels=str(labels),
        out=str(out), every=2, rounds=1, budget=3, wait=False,
    )  # fmt: skip
    res = run_loop(LoopConfig(**cfg))  # no labels file yet: round 0, then wait
    assert res.status == "waiting" and res.labels == 0
    assert len(res.state.rounds) == 1 and res.state.rounds[0].done
    other = make_scene(tmp_path / "other.tif", shape=(40, 40))
    cmd = _loop_cmd(world, labels, out)
    r = CliRunner().invoke(cli, [*cmd[1:3], str(other), *cmd[4:]])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "holds a loop with other scenes" in r.stderr
