"""A run's outputs and project opened in a real QGIS (Debian ``qgis python3-qgis``).

PyQGIS imports only under the system Python, so ``qgis_check.py`` runs there headless
(``QT_QPA_PLATFORM=offscreen``) and reports what QGIS sees as JSON; skipped where that
Python has no ``qgis.core``.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyogrio
import pytest
import rasterio

from .conftest import outputs_of, run_doc

SYSTEM_PY = "/usr/bin/python3"
CHECK = Path(__file__).with_name("qgis_check.py")
ENV = {
    **os.environ,
    "QT_QPA_PLATFORM": "offscreen",
    "XDG_RUNTIME_DIR": "/tmp/runtime-geolabel",
}


def _has_qgis() -> bool:
    if not Path(SYSTEM_PY).exists():
        return False
    r = subprocess.run(
        [SYSTEM_PY, "-c", "import qgis.core"], env=ENV, capture_output=True, timeout=60
    )
    return r.returncode == 0


pytestmark = pytest.mark.skipif(
    not _has_qgis(),
    reason=f"{SYSTEM_PY} cannot import qgis.core "
    "(apt-get install qgis python3-qgis; .ci/run does)",
)


@pytest.fixture(scope="module")
def report(qgis_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    png = tmp_path_factory.mktemp("qgis-png")
    os.makedirs(ENV["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
    r = subprocess.run(
        [SYSTEM_PY, str(CHECK), str(qgis_run), str(png)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    rep["png_dir"] = str(png)
    return rep


def _scene(report: dict) -> dict:
    (scene,) = report["scenes"]
    return scene


def test_every_output_loads_valid_in_the_scene_crs_and_extent(
    report: dict, qgis_run: Path
) -> None:
    scene = _scene(report)
    assert scene["valid"] and scene["crs_valid"]
    roles = {o["role"] for o in report["outputs"]}
    assert {"mask", "confidence", "vectors"} <= roles
    xmin, ymin, xmax, ymax = scene["extent"]
    for o in report["outputs"]:
        assert o["valid"] and o["crs_valid"], o["path"]
        assert o["crs_wkt"] == scene["crs_wkt"], o["path"]
        if o["kind"] == "raster":
            np.testing.assert_allclose(o["extent"], scene["extent"], rtol=0, atol=1e-6)
        else:
            ex = o["extent"]
            assert (
                xmin - 1e-6 <= ex[0] < ex[2] <= xmax + 1e-6
                and ymin - 1e-6 <= ex[1] < ex[3] <= ymax + 1e-6
            )
            assert (
                o["features"]
                == pyogrio.read_info(o["path"], layer=o["layer"])["features"]
                > 0
            )


def test_default_styles_are_the_intended_renderers(
    report: dict, qgis_run: Path
) -> None:
    doc = run_doc(qgis_run)
    names = doc["model"]["classes"]
    with rasterio.open(outputs_of(qgis_run)["mask"]) as ds:
        cmap, nodata = ds.colormap(1), ds.nodata
        nbits = ds.tags(1, "IMAGE_STRUCTURE").get("NBITS")
    # 7 demo classes (or 4 toy ones) + nodata: a 4-bit mask, nodata 15, read by QGIS
    assert nbits == "4" and nodata == 15
    by_role: dict[str, list[dict]] = {}
    for o in report["outputs"]:
        by_role.setdefault(o["role"], []).append(o)
    (mask,) = by_role["mask"]
    assert mask["renderer"] == "paletted" and mask["nodata"] == nodata
    assert [c["label"] for c in mask["classes"]] == names
    assert [c["color"] for c in mask["classes"]] == [
        "#{:02x}{:02x}{:02x}".format(*cmap[i][:3]) for i in range(len(names))
    ]
    assert mask["gdal_category_names"][: len(names)] == names  # GDAL reads the .aux.xml
    for role in ("confidence", "probabilities", "uncertainty"):
        for o in by_role.get(role, []):
            assert o["renderer"] == "singlebandpseudocolor" and (
                o["min"],
                o["max"],
            ) == (0.0, 1.0)
    (pred,) = by_role["vectors"]
    assert pred["renderer"] == "categorizedSymbol" and pred["field"] == "class_name"
    assert [c["label"] for c in pred["categories"]] == names
    assert pred["labels"] and "score" in pred["label_expression"]
    for o in by_role.get("tiles", []):
        assert (
            o["renderer"] == "graduatedSymbol"
            and o["field"] == "mean"
            and len(o["ranges"]) == 5
        )
    for o in by_role.get("next_to_label", []):
        assert o["renderer"] == "graduatedSymbol" and o["field"] == "rank"
        assert (
            o["ranges"][0]["lower"] == 1 and o["ranges"][-1]["upper"] == o["features"]
        )


def test_project_opens_with_every_layer_valid_and_grouped(
    report: dict, qgis_run: Path
) -> None:
    proj = report["project"]
    assert (
        proj["read"]
        and proj["crs_valid"]
        and proj["crs_wkt"] == _scene(report)["crs_wkt"]
    )
    assert proj["layers"] and all(
        lyr["valid"] and lyr["crs_valid"] for lyr in proj["layers"]
    )
    n_files = (
        sum(1 for o in report["outputs"]) + 1
    )  # every raster / GeoPackage layer + the image
    assert len(proj["layers"]) == n_files
    renderers = {
        lyr["name"].rsplit(" ", 1)[-1]: lyr["renderer"] for lyr in proj["layers"]
    }
    assert renderers["image"] == "multibandcolor" and renderers["mask"] == "paletted"
    assert renderers["predictions"] == "categorizedSymbol"
    scene_dir = Path(run_doc(qgis_run)["scenes"][0]["dir"]).name
    group = next(g for g in proj["groups"] if g["name"] == scene_dir)
    assert (
        group["layers"][-1].endswith(" image")
        and f"{scene_dir} mask" in group["visible"]
    )
    assert group["layers"].index(f"{scene_dir} mask") < group["layers"].index(
        f"{scene_dir} image"
    )


def _png(path: Path) -> npt.NDArray[np.int64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.read()[:3].astype(np.int64)


def test_rendered_project_shows_the_mask_over_the_scene(
    report: dict, qgis_run: Path
) -> None:
    png = Path(report["png_dir"])
    with rasterio.open(outputs_of(qgis_run)["mask"]) as ds:
        mask, cmap, nodata = ds.read(1), ds.colormap(1), int(ds.nodata)
    w, h = report["render"]["size"]
    assert (h, w) == (2 * mask.shape[0], 2 * mask.shape[1])
    up = np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1)
    valid = up != nodata
    pal = np.array([cmap.get(i, (0, 0, 0, 0))[:3] for i in range(256)]).T
    # the mask alone: exactly its palette, nodata transparent (white background)
    alone = _png(png / "mask.png")
    expect = np.where(valid[None], pal[:, up], 255)
    assert (np.abs(alone - expect).max(axis=0) <= 2).mean() > 0.99
    for k in np.unique(mask[mask != nodata]):
        if (mask == k).mean() > 0.01:
            assert (
                np.abs(alone - pal[:, k, None, None]).max(axis=0) == 0
            ).mean() > 0.005
    # the project's mask over its image: alpha-blended where valid, the image where not
    a = report["render"]["mask_opacity_in_project"]
    assert 0 < a < 1
    scene = _png(png / "scene.png")
    assert scene[:, valid].std() > 10  # the image is really drawn
    over = _png(png / "mask_over_scene.png")
    blend = np.where(valid[None], a * pal[:, up] + (1 - a) * scene, scene)
    close = np.abs(over - blend).max(axis=0) <= 3
    assert close[valid].mean() > 0.98 and close[~valid].mean() > 0.98
    # the whole project: vectors (outlines, labels, the next_to_label regions) are drawn on
    # top, so only part of the blended mask stays bare; it must still be there
    full = _png(png / "project.png")
    assert (np.abs(full - blend).max(axis=0) <= 3)[valid].mean() > 0.05
    assert (np.abs(full - over).max(axis=0) > 3)[
        valid
    ].mean() > 0.01  # and the vectors are drawn


def test_review_in_qgis_keeps_class_in_step_and_accept_gives_its_ids(
    qgis_run: Path, tmp_path: Path
) -> None:
    """Issue 19: edit ``status`` through its widget, relabel; accept keeps the ids."""
    import shutil

    from click.testing import CliRunner

    from geolabel.cli.main import cli
    from geolabel.qgis._review import REVIEW_STATUSES

    src = outputs_of(qgis_run)["vectors"]
    gpkg = src.with_name("qgis_review_predictions.gpkg")  # in the run: accept finds it
    shutil.copy(src, gpkg)
    try:
        r = subprocess.run(
            [SYSTEM_PY, str(CHECK.with_name("qgis_review.py")), str(gpkg)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        classes = run_doc(qgis_run)["model"]["classes"]
        assert rep["widgets"]["status"] == {
            "type": "ValueMap",
            "values": list(REVIEW_STATUSES),
        }
        assert rep["widgets"]["label"]["type"] == "ValueMap"
        assert all(d["apply_on_update"] for d in rep["defaults"].values())
        assert rep["committed"]
        e = rep["edited"]
        assert e["label"] != e["old_label"] and e["status"] == "edited"
        assert e["class_name"] == e["label"]
        assert e["class_id"] == classes.index(e["label"])
        labels = tmp_path / "labels.gpkg"
        res = CliRunner().invoke(cli, ["accept", str(gpkg), "-o", str(labels)])
        assert res.exit_code == 0, res.output
        got = pyogrio.read_dataframe(labels, layer="labels")
        row = got[got["source_id"] == e["id"]].iloc[0]
        assert (row["label"], row["class_name"], row["class_id"]) == (
            e["label"],
            e["label"],
            e["class_id"],
        )
    finally:
        gpkg.unlink(missing_ok=True)
