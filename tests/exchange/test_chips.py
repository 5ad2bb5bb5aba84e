"""``geolabel export-chips``: image/mask pairs on the scene grid, and COCO that pycocotools reads.

torchgeo cannot be installed beside the pinned torch (it needs torch 2.14 +
torchvision), so the torchgeo layout is checked for what its ``RasterDataset`` relies
on: one file name per image/mask pair, a CRS and transform on every chip, the image
bands of the scene and the mask as a single band; the pixels are read back with
rasterio and compared with the scene and with the labels burnt for ``geolabel train``.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.windows import Window as RioWindow

from geolabel.cli.main import cli
from geolabel.exchange import rle_counts
from geolabel.io.scene import open_scene
from geolabel.labels import class_lookup, rasterize_labels
from geolabel.testing import make_scene, write_toy_spec

pycocotools_coco = pytest.importorskip("pycocotools.coco")
mask_utils = pytest.importorskip("pycocotools.mask")


def _box(t, r0: float, c0: float, r1: float, c1: float) -> shapely.Polygon:
    (x0, y0), (x1, y1) = t @ (c0, r0), t @ (c1, r1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("chips")
    scene = make_scene(d / "scene.tif", shape=(90, 110), dtype="uint16")
    spec = write_toy_spec(d / "toy.yaml")
    with rasterio.open(scene) as src:
        t = src.transform
    ring = _box(t, 40, 40, 70, 75).difference(_box(t, 50, 50, 60, 60))  # a hole
    labels = gpd.GeoDataFrame(
        {"label": ["class0", "class2", "CLASS1", None, "class1"]},
        geometry=[
            _box(t, 2.3, 3.7, 20.2, 30.6),  # in chip (0, 0)
            ring,  # crosses chips (0,0),(0,1),(1,0),(1,1) of 64-px chips
            _box(t, 70, 90, 89, 109),  # bottom-right corner
            _box(t, 5, 80, 20, 100),  # unlabelled: ignored
            shapely.Point(*(t @ (30.5, 85.5))),  # a point: mask only, not COCO
        ],
        crs="EPSG:32633",
    )
    pyogrio.write_dataframe(labels, d / "labels.gpkg", layer="labels")
    return {"dir": d, "scene": scene, "spec": spec, "labels": d / "labels.gpkg"}


@pytest.fixture(scope="module")
def exported(data: dict[str, Path]) -> tuple[Path, dict]:
    out = data["dir"] / "out"
    r = CliRunner().invoke(
        cli,
        [
            "-q",
            "export-chips",
            str(data["scene"]),
            "--labels",
            f"{data['labels']}:labels",
            "-m",
            str(data["spec"]),
            "-o",
            str(out),
            "--chip-size",
            "64",
        ],
    )
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_chips_are_the_scene_pixels_and_the_train_labels(
    data: dict[str, Path], exported: tuple[Path, dict]
) -> None:
    out, summary = exported
    index = json.loads((out / "chips.json").read_text())
    assert summary["chips"] == len(index["chips"]) == 4  # every 64-px chip has labels
    assert index["classes"] == ["class0", "class1", "class2"]
    scene = open_scene(data["scene"])
    feats = pyogrio.read_dataframe(data["labels"], layer="labels")
    whole = rasterize_labels(
        feats,
        scene.grid,
        num_classes=3,
        lookup=class_lookup(["class0", "class1", "class2"]),
    )
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == sorted(p.name for p in (out / "masks").iterdir())
    total = 0
    with rasterio.open(data["scene"]) as src:
        for chip in index["chips"]:
            r, c, h, w = chip["window"]
            assert (h, w) == (64, 64)  # last row/col shifted inside: full size
            with (
                rasterio.open(out / chip["image"]) as im,
                rasterio.open(out / chip["mask"]) as mk,
            ):
                assert im.crs == mk.crs == src.crs
                assert (
                    im.transform
                    == mk.transform
                    == src.window_transform(RioWindow(c, r, w, h))
                )
                assert im.count == 3 and im.dtypes[0] == "uint16"
                assert mk.count == 1 and mk.nodata == 255
                assert np.array_equal(im.read(), src.read(window=RioWindow(c, r, w, h)))
                mask = mk.read(1)
            assert np.array_equal(mask, whole[r : r + h, c : c + w])
            total += int((mask != 255).sum())
    assert summary["labelled_pixels"] == total > 0
    # the point label reached the masks
    assert whole[85, 30] == 1


def test_coco_loads_in_pycocotools_and_matches_the_masks(
    exported: tuple[Path, dict],
) -> None:
    out, summary = exported
    coco = pycocotools_coco.COCO(str(out / "coco.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [
        "class0",
        "class1",
        "class2",
    ]
    assert summary["skipped_points"] == 1
    assert len(coco.getAnnIds()) == summary["annotations"] >= 6
    index = {
        c["image"]: c for c in json.loads((out / "chips.json").read_text())["chips"]
    }
    for img in coco.loadImgs(coco.getImgIds()):
        with rasterio.open(out / img["geolabel"]["mask"]) as mk:
            mask = mk.read(1)
        assert img["file_name"] in index
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        for ann in anns:
            m = coco.annToMask(ann).astype(bool)
            assert m.shape == (img["height"], img["width"])
            cls = ann["category_id"] - 1
            # a COCO mask and the burnt label agree up to the pixels the polygon edge
            # cuts (centre rule vs pycocotools' own rasteriser)
            agree = (mask[m] == cls).mean()
            assert agree > 0.85, (ann["id"], agree)
            x, y, bw, bh = ann["bbox"]
            rows, cols = np.nonzero(m)
            assert cols.min() >= np.floor(x) - 1 and cols.max() <= x + bw + 1
            assert rows.min() >= np.floor(y) - 1 and rows.max() <= y + bh + 1
    # the ring polygon (with its hole) went out as RLE and kept the hole
    rle = [
        a for a in coco.dataset["annotations"] if isinstance(a["segmentation"], dict)
    ]
    assert rle
    for a in rle:
        m = coco.annToMask(a)
        assert m.sum() == pytest.approx(a["area"], rel=0.1)


def test_rle_counts_matches_pycocotools() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((7, 9)) > 0.5
    m[0, 0] = True  # a run of ones first: counts start with 0
    ours = {"counts": rle_counts(m), "size": [7, 9]}
    decoded = mask_utils.decode(mask_utils.frPyObjects(ours, 7, 9))
    assert np.array_equal(decoded.astype(bool), m)


def test_refuses_existing_output_and_labels_off_the_scene(
    data: dict[str, Path], exported: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = exported
    args = ["export-chips", str(data["scene"]), "-m", str(data["spec"])]
    r = CliRunner().invoke(
        cli, [*args, "--labels", f"{data['labels']}:labels", "-o", str(out)]
    )
    assert r.exit_code == 2 and "exists" in r.stderr
    far = gpd.GeoDataFrame(
        {"label": ["class0"]}, geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:32633"
    )
    pyogrio.write_dataframe(far, tmp_path / "far.gpkg", layer="labels")
    r = CliRunner().invoke(
        cli, [*args, "--labels", str(tmp_path / "far.gpkg"), "-o", str(tmp_path / "o")]
    )
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "no labelled pixels" in r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
    with rasterio.open(data["scene"]) as src:
        t = src.transform
    bad = far.assign(label=["water"], geometry=[_box(t, 0, 0, 9, 9)])
    pyogrio.write_dataframe(bad, tmp_path / "bad.gpkg", layer="labels")
    r = CliRunner().invoke(
        cli, [*args, "--labels", str(tmp_path / "bad.gpkg"), "-o", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "unknown class names ['water']" in r.stderr
