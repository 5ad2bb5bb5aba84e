"""``geolabel predict`` through the click group: outputs, georeferencing, errors, batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.testing import make_scene

from ..conftest import LANDSAT8


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    return r.exit_code, r.stdout, r.stderr


def test_outputs_share_the_input_grid(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    code, out, err = _run(
        "predict",
        str(scene_path),
        "-m",
        str(toy_spec_path),
        "-o",
        str(tmp_path / "run"),
    )
    assert code == 0, err
    summary = json.loads(out)
    outputs = summary["scenes"][0]["outputs"]
    assert set(outputs) >= {"mask", "confidence", "probabilities", "vectors"}
    with rasterio.open(scene_path) as src:
        for role in ("mask", "confidence", "probabilities"):
            with rasterio.open(outputs[role]) as ds:
                assert (
                    ds.crs == src.crs
                    and ds.transform == src.transform
                    and ds.shape == src.shape
                )
    with rasterio.open(outputs["mask"]) as ds:
        # 3 classes + nodata fit 2 bits: NBITS=2, nodata 3 (transparent)
        assert ds.dtypes[0] == "uint8" and ds.tags(1, "IMAGE_STRUCTURE")["NBITS"] == "2"
        assert ds.nodata == 3 and ds.colormap(1)[0][3] == 255
        assert ds.colormap(1)[3][3] == 0
        assert ds.overviews(1) == [] or ds.overviews(1)[0] == 2
    info = pyogrio.read_info(outputs["vectors"], layer="predictions")
    assert (info["features"] > 0 and "EPSG" in info["crs"]) or info["crs"]
    df = pyogrio.read_dataframe(outputs["vectors"], layer="predictions")
    assert {
        "class_name",
        "mean_probability",
        "area_m2",
        "score",
        "status",
        "tile_id",
        "model_id",
    } <= set(df.columns)
    with rasterio.open(outputs["mask"]) as ds:
        valid_px = int((ds.read(1) != ds.nodata).sum())
    assert df["pixels"].sum() == valid_px
    np.testing.assert_allclose(df["area_m2"].sum(), df.geometry.area.sum(), rtol=1e-9)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (
        run["model"]["weights_sha256"] is None
        or len(run["model"]["weights_sha256"]) == 64
    )
    roles = {o["role"] for o in run["outputs"]}
    assert roles >= {"mask", "probabilities", "vectors"}
    assert run["scenes"][0]["status"] == "done" and "versions" in run


def test_gpkg_is_version_1_2(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    _run(
        "predict",
        str(scene_path),
        "-m",
        str(toy_spec_path),
        "-o",
        str(tmp_path / "run"),
    )
    gpkg = next((tmp_path / "run").rglob("*.gpkg"))
    header = gpkg.read_bytes()[:100]
    assert header[68:72] == b"GPKG"
    assert int.from_bytes(header[60:64], "big") == 10200


def test_landsat8_negative_northings_and_zero_fill(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    # a small crop keeps this fast; the crop keeps the negative northing origin
    src = tmp_path / "l8.tif"
    with rasterio.open(LANDSAT8) as ds:
        win = rasterio.windows.Window(0, 0, 300, 260)
        prof = ds.profile | {
            "width": 300,
            "height": 260,
            "transform": ds.window_transform(win),
        }
        with rasterio.open(src, "w", **prof) as out:
            out.write(ds.read(window=win))
    code, out, err = _run(
        "predict",
        str(src),
        "-m",
        str(toy_spec_path),
        "-o",
        str(tmp_path / "run"),
        "--nodata",
        "0",
        "--no-vectors",
    )
    assert code == 0, err
    outputs = json.loads(out)["scenes"][0]["outputs"]
    with rasterio.open(src) as s, rasterio.open(outputs["mask"]) as m:
        assert m.transform == s.transform and m.transform.f < 0 and m.crs == s.crs
        fill = (s.read() == 0).all(axis=0)
        assert fill.any()
        nd = m.nodata
        assert (m.read(1)[fill] == nd).all() and (m.read(1)[~fill] != nd).all()


def test_bad_scene_fails_alone(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_text("garbage")
    nocrs = make_scene(tmp_path / "nocrs.tif", crs=None)
    good2 = make_scene(tmp_path / "good2.tif", shape=(70, 90), seed=3)
    code, out, err = _run(
        "predict",
        str(scene_path),
        str(bad),
        str(nocrs),
        str(good2),
        "-m",
        str(toy_spec_path),
        "-o",
        str(tmp_path / "run"),
    )
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("geolabel: error:")]
    assert len(lines) == 2 and "bad.tif" in lines[0] and "no CRS" in lines[1]
    assert "Traceback" not in err
    status = {Path(s["scene"]).name: s["status"] for s in json.loads(out)["scenes"]}
    assert status == {
        "scene.tif": "done",
        "bad.tif": "failed",
        "nocrs.tif": "failed",
        "good2.tif": "done",
    }
    assert not (tmp_path / "run" / "bad").exists() and not list(
        (tmp_path / "run").rglob("*.partial*")
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tile-size", "64", "--overlap", "40"], "four times the overlap"),
        (["--bands", "1,2"], "model wants 3"),
        (["--bands", "x"], "not a comma-separated"),
    ],
)
def test_bad_options_give_one_line(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path, args: list[str], needle: str
) -> None:
    code, _, err = _run(
        "predict",
        str(scene_path),
        "-m",
        str(toy_spec_path),
        "-o",
        str(tmp_path / "run"),
        *args,
    )
    assert code != 0 and needle in err and "Traceback" not in err


def test_bad_model_spec(tmp_path: Path, scene_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: x\ntask: segmentation\nbackend: torch\nweights: nope.pt\ninput: {bands: [a], tile_size: 64}\nclasses: []\n"
    )
    code, _, err = _run(
        "predict", str(scene_path), "-m", str(spec), "-o", str(tmp_path / "run")
    )
    assert code == 2 and err.count("\n") == 1 and "bad.yaml" in err and "classes" in err
    assert not (tmp_path / "run").exists()


def test_rerun_is_a_resume_and_changes_nothing(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    args = (
        "predict",
        str(scene_path),
        "-m",
        str(toy_spec_path),
        "-o",
        str(tmp_path / "run"),
    )
    _run(*args)
    first = {
        p.name: p.read_bytes() for p in (tmp_path / "run" / "scene").glob("scene_*")
    }
    record = (tmp_path / "run" / "run.json").read_bytes()
    code, _, _ = _run(*args)
    assert code == 0
    # a finished run is not rewritten, its run.json included (issue 16 item 11)
    assert (tmp_path / "run" / "run.json").read_bytes() == record
    again = {
        p.name: p.read_bytes() for p in (tmp_path / "run" / "scene").glob("scene_*")
    }
    assert again == first


def test_failed_tiles_are_listed_and_retried(tmp_path: Path, scene_path: Path) -> None:
    from geolabel.testing import write_toy_spec

    spec = write_toy_spec(tmp_path / "f.yaml", tile_size=64, fail_on=["r00001c00001"])
    args = [
        "predict",
        str(scene_path),
        "-m",
        str(spec),
        "-o",
        str(tmp_path / "run"),
        "--batch-size",
        "1",
    ]
    code, _, err = _run(*args)
    assert code == 1 and "1 failed" in err and "retry-failed" in err
    assert not list((tmp_path / "run").rglob("*_mask.tif"))
    ok = write_toy_spec(tmp_path / "f.yaml", tile_size=64)
    code, _, err = _run(*args[:2], "-m", str(ok), *args[4:], "--retry-failed")
    assert code == 0, err


def test_area_m2_is_square_metres_in_a_feet_crs(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    """The same pixels in metres (UTM) and in US survey feet (EPSG:2264) give the
    same ``area_m2``: a 10 ft pixel is 9.290341 m², not 100."""
    ft = 1200 / 3937  # metres per US survey foot
    areas = {}
    for name, crs, transform in (
        ("m", "EPSG:32617", Affine(10 * ft, 0, 500000, 0, -10 * ft, 4000000)),
        ("ftus", "EPSG:2264", Affine(10, 0, 2000000, 0, -10, 700000)),
    ):
        scene = make_scene(tmp_path / f"{name}.tif", crs=crs, transform=transform)
        code, out, err = _run(
            "predict", str(scene), "-m", str(toy_spec_path), "-o", str(tmp_path / name)
        )
        assert code == 0, err
        vectors = json.loads(out)["scenes"][0]["outputs"]["vectors"]
        df = pyogrio.read_dataframe(vectors, layer="predictions")
        areas[name] = df.sort_values("id")[["pixels", "area_m2"]].to_numpy()
    np.testing.assert_array_equal(areas["m"][:, 0], areas["ftus"][:, 0])
    np.testing.assert_allclose(
        areas["ftus"][:, 1], areas["ftus"][:, 0] * 100 * ft**2, atol=5e-4
    )
    np.testing.assert_allclose(areas["m"][:, 1], areas["ftus"][:, 1], atol=1e-3)


def test_bad_tile_size_is_a_usage_error_before_any_scene(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    out = tmp_path / "run"
    for opt in (["--tile-size", "16", "--overlap", "8"], ["--overlap", "40"]):
        code, stdout, err = _run(
            "predict", str(scene_path), "-m", str(toy_spec_path), "-o", str(out), *opt
        )
        assert code == 2 and stdout == "", err
        assert len(err.splitlines()) == 1 and err.startswith("geolabel: error: "), err
        assert "four times the overlap" in err and opt[-1] in err
        assert not out.exists()
    assert (
        "--tile-size 16:"
        in _run(
            "predict",
            str(scene_path),
            "-m",
            str(toy_spec_path),
            "-o",
            str(out),
            "--tile-size",
            "16",
            "--overlap",
            "8",
        )[2]
    )
