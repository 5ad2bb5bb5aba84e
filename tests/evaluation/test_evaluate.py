"""``geolabel evaluate`` against a hand-computed confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import ConfigError, CRSMismatchError
from geolabel.evaluation import (
    EvalOptions,
    confusion_matrix,
    evaluate,
    format_table,
    segmentation_scores,
)

T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
PRED = np.array([[0, 0, 1, 2], [1, 1, 1, 255], [2, 2, 0, 0]], np.uint8)
# reference as model indexes (255 = none); written 1-based with 0 as nodata
REF = np.array([[0, 1, 1, 2], [1, 1, 255, 1], [2, 0, 0, 255]], np.uint8)
# rows reference, columns prediction, counted by hand from the arrays above
CM = [[2, 0, 1], [1, 3, 0], [0, 0, 2]]
NAMES = ("water", "forest", "urban")


def _tif(path: Path, a: np.ndarray, nodata: int, transform: Affine = T) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=a.shape[1],
        height=a.shape[0],
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(a, 1)
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    mask = _tif(tmp_path / "mask.tif", PRED, 255)
    ref = _tif(
        tmp_path / "ref.tif", np.where(REF == 255, 0, REF + 1).astype(np.uint8), 0
    )
    return mask, ref


def test_metrics_match_hand_computation() -> None:
    cm = confusion_matrix(PRED, REF, 3)
    assert cm.tolist() == CM
    s = segmentation_scores(cm, NAMES)
    iou = [c["iou"] for c in s["classes"]]
    np.testing.assert_allclose(iou, [2 / 4, 3 / 4, 2 / 3])
    np.testing.assert_allclose([c["f1"] for c in s["classes"]], [4 / 6, 6 / 7, 4 / 5])
    np.testing.assert_allclose(
        [c["precision"] for c in s["classes"]], [2 / 3, 3 / 3, 2 / 3]
    )
    np.testing.assert_allclose(
        [c["recall"] for c in s["classes"]], [2 / 3, 3 / 4, 2 / 2]
    )
    assert s["miou"] == pytest.approx((0.5 + 0.75 + 2 / 3) / 3)
    assert s["overall_accuracy"] == pytest.approx(7 / 9)
    assert s["pixels"] == 9
    table = format_table(s)
    assert "forest" in table and "0.750" in table and "7" in table


def test_absent_reference_class_is_left_out_of_the_mean() -> None:
    s = segmentation_scores(confusion_matrix([0, 1, 2], [0, 1, 1], 3), NAMES)
    assert s["classes"][2]["support"] == 0 and s["classes"][2]["iou"] == 0.0
    assert s["miou"] == pytest.approx((1.0 + 0.5) / 2)


def test_cli_raster_reference(files: tuple[Path, Path], tmp_path: Path) -> None:
    mask, ref = files
    r = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(mask),
            str(ref),
            "--class-offset",
            "-1",
            "-o",
            str(tmp_path / "scores.json"),
        ],
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["confusion_matrix"] == CM and out["reference_kind"] == "raster"
    assert out["unpredicted_reference_pixels"] == 1
    assert json.loads((tmp_path / "scores.json").read_text()) == out
    assert "confusion matrix" in r.stderr and "IoU" in r.stderr


def test_strips_give_the_same_matrix(files: tuple[Path, Path]) -> None:
    mask, ref = files
    s = evaluate(
        mask, ref, options=EvalOptions(class_offset=-1, class_names=NAMES, strip_rows=2)
    )
    assert s["confusion_matrix"] == CM and s["class_names"] == list(NAMES)


def test_mask_nodata_comes_from_the_file(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    # geolabel masks of 3 classes are 2-bit with nodata 3 (io/raster.py mask_encoding)
    _, ref = files
    with rasterio.open(
        tmp_path / "mask2.tif",
        "w",
        driver="GTiff",
        width=PRED.shape[1],
        height=PRED.shape[0],
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=T,
        nodata=3,
        nbits=2,
    ) as ds:
        ds.write(np.where(PRED == 255, 3, PRED).astype(np.uint8), 1)
    s = evaluate(
        tmp_path / "mask2.tif",
        ref,
        options=EvalOptions(class_offset=-1, class_names=NAMES),
    )
    assert s["confusion_matrix"] == CM and s["unpredicted_reference_pixels"] == 1


def test_uint16_mask_class_255_is_a_class(tmp_path: Path) -> None:
    # a 16-bit mask (nodata 65535) may hold class 255; it is scored, not ignored
    pred = np.array([[255, 255, 1], [0, 65535, 256]], np.uint16)
    ref = np.array([[255, 1, 1], [0, 255, 256]], np.uint16)
    paths = []
    for name, a, nd in (("m", pred, 65535), ("r", ref + 1, 0)):
        paths.append(tmp_path / f"{name}.tif")
        with rasterio.open(
            paths[-1],
            "w",
            driver="GTiff",
            width=3,
            height=2,
            count=1,
            dtype="uint16",
            crs="EPSG:32633",
            transform=T,
            nodata=nd,
        ) as ds:
            ds.write(a, 1)
    names = tuple(f"c{i}" for i in range(257))
    s = evaluate(*paths, options=EvalOptions(class_offset=-1, class_names=names))
    cm = np.array(s["confusion_matrix"])
    assert cm.sum() == 5 and cm[255, 255] == 1 and cm[1, 255] == 1
    assert cm[1, 1] == cm[0, 0] == cm[256, 256] == 1
    assert s["unpredicted_reference_pixels"] == 1


def test_vector_reference_is_rasterised_on_the_mask_grid(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    mask, _ = files
    # left two columns: water; pixel (1, 3): urban point
    gdf = gpd.GeoDataFrame(
        {"label": ["water", "urban"]},
        geometry=[
            shapely.box(500000, 3999970, 500020, 4000000),
            shapely.Point(500035, 3999985),
        ],
        crs="EPSG:32633",
    )
    pyogrio.write_dataframe(gdf, tmp_path / "ref.gpkg", layer="truth")
    s = evaluate(
        mask,
        tmp_path / "ref.gpkg",
        options=EvalOptions(class_names=NAMES, reference_layer="truth"),
    )
    # water reference at pred [0,0,1,1,2,2] -> 2 right; the urban point is unpredicted
    assert s["confusion_matrix"] == [[2, 2, 2], [0, 0, 0], [0, 0, 0]]
    assert s["unpredicted_reference_pixels"] == 1


def test_errors(files: tuple[Path, Path], tmp_path: Path) -> None:
    mask, ref = files
    other = _tif(
        tmp_path / "shifted.tif",
        np.ones((3, 4), np.uint8),
        0,
        T @ Affine.translation(1, 0),
    )
    with pytest.raises(CRSMismatchError, match="resample"):
        evaluate(mask, other)
    with pytest.raises(ConfigError, match="class offset"):
        evaluate(
            mask, ref, options=EvalOptions(class_names=NAMES)
        )  # codes 1..3 vs 0..2
    with pytest.raises(ConfigError, match="classes 0-2"):
        evaluate(mask, ref)  # no names: the class count comes from the mask (0..2)
    r = CliRunner().invoke(cli, ["evaluate", str(mask), str(tmp_path / "x.csv")])
    assert r.exit_code == 2 and "reference not found" in r.stderr


def test_mask_file_takes_its_class_names_from_its_tags(tmp_path: Path) -> None:
    """A mask file evaluated directly (no --model) knows its classes from CLASSES."""
    pred = np.where(PRED == 2, 0, PRED).astype(np.uint8)  # class 2 never predicted
    mask = _tif(tmp_path / "mask.tif", pred, 255)
    with rasterio.open(mask, "r+") as ds:
        ds.update_tags(CLASSES=",".join(NAMES))
    ref = _tif(tmp_path / "ref.tif", REF, 255)
    scores = evaluate(mask, ref)
    assert len(scores["confusion_matrix"]) == 3
    assert [c["name"] for c in scores["classes"]] == list(NAMES)


def test_reference_out_of_the_class_range_names_the_file(
    files: tuple[Path, Path],
) -> None:
    mask, ref = files
    with pytest.raises(ConfigError) as err:  # codes 1..3 as indexes of 3 classes
        evaluate(mask, ref, options=EvalOptions(class_names=NAMES))
    assert str(err.value).startswith(
        f"{ref}: reference holds class values outside 0..2 (min 1, max 3)"
    )
    assert "--class-offset" in str(err.value)


def test_reference_that_misses_the_prediction_is_refused(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    mask, _ = files
    far = gpd.GeoDataFrame(  # 100 km east of the mask
        {"label": ["water"]},
        geometry=[shapely.box(600000, 3999970, 600020, 4000000)],
        crs="EPSG:32633",
    )
    pyogrio.write_dataframe(far, tmp_path / "far.gpkg", layer="truth")
    with rasterio.open(mask, "r+") as ds:  # class names as finalize writes them
        ds.update_tags(CLASSES=",".join(NAMES))
    r = CliRunner().invoke(
        cli, ["evaluate", str(mask), f"{tmp_path / 'far.gpkg'}:truth"]
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    line = (
        f"{tmp_path / 'far.gpkg'}:truth: no reference feature overlaps the prediction"
    )
    assert r.stderr.startswith(f"geolabel: error: {line} {mask}")
    assert r.stderr.count("\n") == 1 and r.stdout == ""
    # labelled only where the mask is nodata (pixel (1, 3)): nothing to score either
    ref = _tif(tmp_path / "ref.tif", np.where(PRED == 255, 1, 0).astype(np.uint8), 0)
    with pytest.raises(
        ConfigError,
        match=r"no reference pixel overlaps a predicted pixel .* \(1 labelled pixels fall on the mask's nodata\)",
    ):
        evaluate(mask, ref, options=EvalOptions(class_names=NAMES, class_offset=-1))
