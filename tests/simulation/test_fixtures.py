"""The shipped simulation scenes: oracle on the image grid, classes as documented."""

from __future__ import annotations

import csv
import runpy
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.features import rasterize

from geolabel.models.spec import load_spec

DATA = Path(__file__).resolve().parents[2] / "src" / "geolabel" / "_data"
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "simulation"
SCENES = [
    ("nc-landsat7", "nc_landsat7_2000.tif", "strata.tif", "nc-landsat7-unet.yaml"),
    ("cloud-landsat7", "cloud_landsat7.tif", "cloud_reference.tif",
     "cloud-landsat7-unet.yaml"),
    ("spacenet-atlanta", "spacenet_atlanta.tif", "building_reference.tif",
     "spacenet-atlanta-unet.yaml"),
]  # fmt: skip


@pytest.mark.parametrize(("folder", "image", "oracle", "spec"), SCENES)
def test_oracle_sits_on_the_image_grid_with_the_spec_classes(
    folder: str, image: str, oracle: str, spec: str
) -> None:
    s = load_spec(CONFIGS / spec, require_weights=False)
    with (
        rasterio.open(DATA / folder / image) as img,
        rasterio.open(DATA / folder / oracle) as ref,
    ):
        assert (img.crs, img.transform, img.shape) == (
            ref.crs,
            ref.transform,
            ref.shape,
        )
        assert img.count == len(s.input.bands)
        codes = np.unique(ref.read(1))
    # codes 1..C map to the spec's classes (simulate --oracle-offset -1), 0 is nodata
    assert set(codes.tolist()) - {0} <= set(range(1, s.num_classes + 1))
    assert len(set(codes.tolist()) - {0}) == s.num_classes


def test_spacenet_reference_is_the_rasterised_footprints() -> None:
    d = DATA / "spacenet-atlanta"
    df = pyogrio.read_dataframe(d / "buildings.geojson")
    with rasterio.open(d / "building_reference.tif") as ref:
        assert df.crs is not None and df.crs.to_epsg() == ref.crs.to_epsg() == 32616
        burnt = rasterize(
            [(g, 2) for g in df.geometry],
            out_shape=ref.shape,
            transform=ref.transform,
            fill=1,
            dtype="uint8",
        )
        got = ref.read(1)
    assert len(df) == 43 and (df["label"] == "building").all()
    assert np.array_equal(got, burnt)
    assert 0.03 < float((got == 2).mean()) < 0.06


def test_neon_reference_burns_the_crown_boxes_on_the_image_grid(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "ref.tif"
    script = runpy.run_path(str(root / "scripts" / "prepare_neon_reference.py"))
    script["main"](out)
    neon = root / "tests" / "data" / "neon-trees"
    s = load_spec(CONFIGS / "neon-trees-unet.yaml", require_weights=False)
    with rasterio.open(neon / "OSBS_029.tif") as img, rasterio.open(out) as ref:
        assert (img.crs, img.transform, img.shape) == (
            ref.crs,
            ref.transform,
            ref.shape,
        )
        assert img.count == len(s.input.bands)
        r = ref.read(1)
    assert set(np.unique(r).tolist()) - {0} == set(range(1, s.num_classes + 1))
    with open(neon / "OSBS_029.csv", newline="") as f:
        for row in csv.DictReader(f):  # boxes are tree (or nodata), corners too
            x0, y0, x1, y1 = (
                int(float(row[k])) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            assert set(np.unique(r[y0:y1, x0:x1]).tolist()) <= {0, 2}
    assert 0.4 < float((r == 2).mean()) < 0.7
