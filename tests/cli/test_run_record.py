"""The run record: paths relative to the run folder, read alike by every command, and
accumulated across ``predict`` calls (issues 16 item 9, 19 items 2 and 4)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import rasterio
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.cli.options import ProgressBar
from geolabel.io.run_record import merge_records, resolve_path
from geolabel.priority.regions import load_run
from geolabel.testing import make_scene, write_toy_spec


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with two small scenes and a toy spec; cwd is set to it."""
    make_scene(tmp_path / "a.tif", shape=(70, 90), seed=1)
    make_scene(tmp_path / "b.tif", shape=(60, 80), seed=2)
    write_toy_spec(tmp_path / "toy.yaml", tile_size=64)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _mask_as_reference(run: Path, scene: str, dest: Path) -> Path:
    """A reference raster equal to the scene's mask (so every score is 1)."""
    shutil.copy(run / scene / f"{scene}_mask.tif", dest)
    return dest


def test_relative_out_is_readable_by_evaluate(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = _run("predict", "a.tif", "-m", "toy.yaml", "-o", "tiles/run-v2")
    assert code == 0, err
    doc = _record(work / "tiles/run-v2")
    for o in doc["outputs"]:
        assert not Path(o["path"]).is_absolute()
        assert not o["path"].startswith("tiles/"), o["path"]
        assert (work / "tiles/run-v2" / o["path"]).exists(), o
    assert doc["scenes"][0]["scene"] == "../../a.tif"
    ref = _mask_as_reference(work / "tiles/run-v2", "a", work / "ref.tif")
    code, out, err = _run("evaluate", "tiles/run-v2", str(ref))
    assert code == 0, err
    assert json.loads(out)["overall_accuracy"] == 1.0
    # and from another working directory, through an absolute run folder
    other = work / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    code, out, err = _run("evaluate", str(work / "tiles/run-v2"), str(ref))
    assert code == 0, err


def test_old_records_with_cwd_relative_or_absolute_paths_still_read(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = work / "tiles/run1"
    assert _run("predict", "a.tif", "-m", "toy.yaml", "-o", "tiles/run1")[0] == 0
    doc = _record(run)
    for o in doc["outputs"]:  # the form earlier versions wrote
        o["path"] = "tiles/run1/" + o["path"]
        o["scene"] = o["scene"] and "a.tif"
    for s in doc["scenes"]:
        s["scene"] = "a.tif"
    (run / "run.json").write_text(json.dumps(doc))
    other = work / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    ref = _mask_as_reference(run, "a", work / "ref.tif")
    code, _, err = _run("evaluate", str(run), str(ref))
    assert code == 0, err
    (scene,) = load_run(run)
    assert scene.outputs["mask"] == run / "a" / "a_mask.tif"
    assert resolve_path(run, str(run / "a" / "a_mask.tif")) == run / "a" / "a_mask.tif"


def test_record_accumulates_across_calls(work: Path) -> None:
    run = work / "RUN"
    assert _run("predict", "a.tif", "-m", "toy.yaml", "-o", "RUN")[0] == 0
    assert _run("predict", "b.tif", "-m", "toy.yaml", "-o", "RUN")[0] == 0
    doc = _record(run)
    assert [s["scene"] for s in doc["scenes"]] == ["../a.tif", "../b.tif"]
    masks = {o["scene"] for o in doc["outputs"] if o["role"] == "mask"}
    assert masks == {"../a.tif", "../b.tif"}
    assert [o["role"] for o in doc["outputs"]].count("project") == 1
    qgs = (run / "run.qgs").read_text()
    assert "a_mask.tif" in qgs and "b_mask.tif" in qgs
    assert {s.name for s in load_run(run)} == {"a", "b"}
    ref = _mask_as_reference(run, "a", work / "ref.tif")
    code, _, err = _run("evaluate", "RUN", str(ref), "--scene", "a")
    assert code == 0, err
    # re-running a subset reuses the finished scene untouched and keeps the other one
    mask_a = run / "a" / "a_mask.tif"
    before = (mask_a.stat().st_mtime_ns, (run / "run.json").read_bytes())
    code, _, err = _run("predict", "a.tif", "-m", "toy.yaml", "-o", "RUN")
    assert code == 0, err
    assert (mask_a.stat().st_mtime_ns, (run / "run.json").read_bytes()) == before
    doc = _record(run)
    assert [s["scene"] for s in doc["scenes"]] == ["../a.tif", "../b.tif"]
    assert "b_mask.tif" in (run / "run.qgs").read_text()


def test_same_stem_from_two_calls_gets_two_folders(work: Path) -> None:
    (work / "x").mkdir()
    (work / "y").mkdir()
    shutil.copy(work / "a.tif", work / "x" / "s.tif")
    shutil.copy(work / "b.tif", work / "y" / "s.tif")
    assert _run("predict", "x/s.tif", "-m", "toy.yaml", "-o", "RUN")[0] == 0
    assert _run("predict", "y/s.tif", "-m", "toy.yaml", "-o", "RUN")[0] == 0
    doc = _record(work / "RUN")
    assert [Path(s["dir"]).name for s in doc["scenes"]] == ["s", "s-1"]
    with rasterio.open(work / "RUN/s-1/s_mask.tif") as ds:
        assert ds.shape == (60, 80)


def test_overwrite_starts_a_fresh_record(work: Path) -> None:
    assert _run("predict", "a.tif", "-m", "toy.yaml", "-o", "RUN")[0] == 0
    code, _, err = _run(
        "predict", "b.tif", "-m", "toy.yaml", "-o", "RUN", "--overwrite"
    )
    assert code == 0, err
    assert [s["scene"] for s in _record(work / "RUN")["scenes"]] == ["../b.tif"]


def test_merge_keeps_run_level_outputs_and_replaces_the_project(tmp_path: Path) -> None:
    prev = {
        "scenes": [{"scene": "../a.tif", "status": "done"}],
        "outputs": [
            {"scene": "../a.tif", "role": "mask", "path": "a/a_mask.tif"},
            {"scene": None, "role": "next_to_label", "path": "next_to_label.gpkg"},
            {"scene": None, "role": "project", "path": "run.qgs"},
        ],
    }
    new = {
        "scenes": [{"scene": "../b.tif", "status": "done"}],
        "outputs": [{"scene": "../b.tif", "role": "mask", "path": "b/b_mask.tif"}],
    }
    doc = merge_records(tmp_path / "run", prev, new)
    assert [o["role"] for o in doc["outputs"]] == ["mask", "next_to_label", "mask"]


def test_progress_rate_ignores_tiles_done_before(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bar = ProgressBar(quiet=False)
    bar("a", 4000, 5000)  # 4000 tiles were done by an earlier call
    line = bar.bar.format_meter(**bar.bar.format_dict)
    bar.close()
    rate = re.search(r"([\d.]+)tile/s", line)
    assert rate is None or float(rate.group(1)) < 1000, line


def test_a_refused_rerun_leaves_the_record_and_project_as_they_were(work: Path) -> None:
    """Another --tile-size on a finished run is refused by its store; the record still
    says the scene is done (prioritize, evaluate keep working), the project is kept."""
    code, _, err = _run("predict", "a.tif", "-m", "toy.yaml", "-o", "run")
    assert code == 0, err
    files = {p: (work / "run" / p).read_bytes() for p in ("run.json", "run.qgs")}
    code, _, err = _run(
        "predict", "a.tif", "-m", "toy.yaml", "-o", "run", "--tile-size", "48"
    )
    assert code != 0 and "another configuration" in err, err
    for p, data in files.items():
        assert (work / "run" / p).read_bytes() == data, p
    code, _, err = _run("prioritize", "run", "-n", "3")
    assert code == 0, err


def test_a_refused_scene_keeps_its_entry_beside_a_new_one(work: Path) -> None:
    """A call that runs a new scene and is refused on a finished one: the new scene is
    recorded, the refused one keeps its done entry and outputs."""
    code, _, err = _run("predict", "a.tif", "-m", "toy.yaml", "-o", "run")
    assert code == 0, err
    before = _record(work / "run")
    code, _, err = _run(
        "predict", "a.tif", "b.tif", "-m", "toy.yaml", "-o", "run", "--tile-size", "48"
    )
    assert code != 0 and "another configuration" in err, err
    doc = _record(work / "run")
    status = {Path(s["scene"]).name: s["status"] for s in doc["scenes"]}
    assert status == {"a.tif": "done", "b.tif": "done"}, status
    a_out = [o for o in doc["outputs"] if o.get("scene") and "a.tif" in o["scene"]]
    assert a_out == [o for o in before["outputs"] if o.get("scene")], a_out


def test_a_scene_changed_in_place_is_refused_not_reused(work: Path) -> None:
    """New pixels on the same grid: the finished outputs are stale, so the re-run is
    refused in one line (they stay as they were); --overwrite redoes the scene."""
    code, _, err = _run("predict", "a.tif", "-m", "toy.yaml", "-o", "run")
    assert code == 0, err
    mask = work / "run" / "a" / "a_mask.tif"
    before = mask.read_bytes()
    with rasterio.open(work / "a.tif", "r+") as ds:
        ds.write(ds.read()[:, ::-1])  # same grid, other pixels
    code, _, err = _run("predict", "a.tif", "-m", "toy.yaml", "-o", "run")
    assert code != 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert any("a.tif: changed since its outputs" in ln for ln in lines), err
    assert mask.read_bytes() == before
    assert _record(work / "run")["scenes"][0]["status"] == "done"
    code, _, err = _run(
        "predict", "a.tif", "-m", "toy.yaml", "-o", "run", "--overwrite"
    )
    assert code == 0, err
    assert mask.read_bytes() != before
    code, _, err = _run("predict", "a.tif", "-m", "toy.yaml", "-o", "run")
    assert code == 0, err  # recorded anew by the overwrite


def test_a_new_run_whose_scenes_are_all_refused_leaves_no_folder(work: Path) -> None:
    code, _, err = _run("predict", "missing.tif", "-m", "toy.yaml", "-o", "tiles/new")
    assert code != 0 and "missing.tif" in err, err
    assert not (work / "tiles/new").exists()
    (work / "tiles/kept").mkdir(parents=True)  # a folder the user made is kept
    code, _, err = _run("predict", "missing.tif", "-m", "toy.yaml", "-o", "tiles/kept")
    assert code != 0
    assert (work / "tiles/kept").is_dir()
