"""The Python API: DataArray in -> Dataset out, lazy, CRS kept, equal to the CLI's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dask.array as dsa
import numpy as np
import pytest
import rioxarray
import xarray as xr
from click.testing import CliRunner

import geolabel
from geolabel.cli.main import cli
from geolabel.errors import RunStateError, SceneReadError

from ..io._remote_helpers import NAMES, crop_scene


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return crop_scene(tmp_path / "scene.tif")


@pytest.fixture
def cli_run(scene: Path, spec5: Path, tmp_path: Path) -> Path:
    out = tmp_path / "cli"
    r = CliRunner().invoke(
        cli, ["predict", str(scene), "-m", str(spec5), "-o", str(out), "-q"]
    )
    assert r.exit_code == 0, r.output
    return out


def test_import_is_light() -> None:
    assert set(geolabel.__all__) >= {
        "predict",
        "open_run",
        "prioritize",
        "accept",
        "train",
        "evaluate",
    }
    code = "import sys, geolabel; assert 'torch' not in sys.modules and 'geolabel.api' not in sys.modules"
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("backing", ["numpy", "dask"])
def test_dataarray_in_dataset_out_equals_cli(
    backing: str, scene: Path, spec5: Path, cli_run: Path, tmp_path: Path
) -> None:
    da = rioxarray.open_rasterio(
        scene, chunks={"x": 64, "y": 64} if backing == "dask" else None
    )
    assert isinstance(da, xr.DataArray)
    da = da.assign_coords(band=list(NAMES)).rename("nc")
    if backing == "dask":
        assert isinstance(da.data, dsa.Array)
    run = geolabel.predict(da, spec5, tmp_path / "api")
    assert run.ok and run.scenes[0].outputs["mask"].name == "nc_mask.tif"
    ds = run.to_dataset()
    assert set(ds.data_vars) == {"class", "confidence", "uncertainty", "probabilities"}
    assert all(isinstance(v.data, dsa.Array) for v in ds.data_vars.values())
    assert ds["class"].dims == ("y", "x")
    assert list(ds["uncertainty"]["measure"].values) == ["entropy"]
    assert list(ds["probabilities"]["class_name"].values) == [
        "class0",
        "class1",
        "class2",
    ]
    assert ds.rio.crs == da.rio.crs
    assert ds.rio.transform() == da.rio.transform()
    np.testing.assert_array_equal(ds["x"], da["x"])
    ref = geolabel.open_run(cli_run).to_dataset()
    xr.testing.assert_equal(ds["class"].compute(), ref["class"].compute())
    xr.testing.assert_allclose(
        ds["probabilities"].compute(), ref["probabilities"].compute()
    )


def test_loaded_spec_list_of_files_and_scene_lookup(
    scene: Path, spec5: Path, tmp_path: Path
) -> None:
    other = crop_scene(tmp_path / "other.tif", rows=70, cols=90)
    spec = geolabel.load_spec(spec5)
    run = geolabel.predict([scene, other], spec, tmp_path / "two")
    assert [s.status for s in run.scenes] == ["done", "done"]
    assert run.to_dataset("other")["class"].shape == (70, 90)
    with pytest.raises(RunStateError, match="holds 2 scenes"):
        run.to_dataset()
    assert geolabel.open_run(tmp_path / "two").record["model"]["id"] == spec.model_id


def test_dataarray_without_crs_is_refused(spec5: Path, tmp_path: Path) -> None:
    da = xr.DataArray(np.zeros((5, 8, 8), "float32"), dims=("band", "y", "x"))
    with pytest.raises(SceneReadError, match="has no CRS"):
        geolabel.predict(da, spec5, tmp_path / "r")


def test_evaluate_and_prioritize_return_data(
    cli_run: Path, scene: Path, tmp_path: Path
) -> None:
    queue = geolabel.prioritize(cli_run, 5)
    assert len(queue) == 5 and queue.crs is not None
    assert Path(queue.attrs["gpkg"]).is_file()
    r = CliRunner().invoke(cli, ["prioritize", str(cli_run), "-n", "5"])
    assert [p["rank"] for p in json.loads(r.stdout)["picks"]] == list(queue["rank"])
    mask = cli_run / "scene" / "scene_mask.tif"
    scores = geolabel.evaluate(cli_run, mask)
    assert scores["miou"] == pytest.approx(1.0)


def test_dataarray_without_spatial_dims_is_one_error(
    spec5: Path, tmp_path: Path
) -> None:
    da = xr.DataArray(np.zeros((5, 8, 8), "float32"), dims=("band", "a", "b"))
    with pytest.raises(SceneReadError, match="have no y/x"):
        geolabel.predict(da, spec5, tmp_path / "r")


def test_accept_returns_counts_and_refuses_bad_thresholds(
    cli_run: Path, tmp_path: Path
) -> None:
    from geolabel.errors import ConfigError

    sugg = cli_run / "scene" / "scene_predictions.gpkg"
    first = geolabel.accept(sugg, tmp_path / "labels.gpkg", threshold=0.0)
    again = geolabel.accept(sugg, tmp_path / "labels.gpkg", threshold=0.0)
    assert first.added > 0 and again.added == 0 and again.duplicates == first.added
    with pytest.raises(ConfigError, match=r"threshold=1\.5"):
        geolabel.accept(sugg, tmp_path / "labels.gpkg", threshold=1.5)
