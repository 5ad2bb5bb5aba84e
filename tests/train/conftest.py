"""A tiny two-class scene, its truth raster, label vectors and an untrained U-Net spec."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely

from geolabel.testing import make_scene

from .._models import write_tiny_unet


@pytest.fixture(scope="package")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-class scene (dark left, bright right, a bright blob left), base spec, labels."""
    d = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(1)
    h, w = 80, 96
    truth = np.zeros((h, w), np.uint8)
    truth[:, 48:] = 1
    truth[20:36, 10:26] = 1
    data = np.where(truth, 150.0, 50.0)[None] + rng.normal(0, 8, (3, h, w))
    scene = make_scene(d / "scene.tif", data=data.astype(np.float32))
    with rasterio.open(scene) as src:
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": 0}
        t = src.transform
    with rasterio.open(d / "truth.tif", "w", **profile) as dst:  # codes 1..2, 0 nodata
        dst.write(truth + 1, 1)

    def box(r0: int, c0: int, r1: int, c1: int) -> shapely.Polygon:
        (x0, y0), (x1, y1) = t @ (c0, r0), t @ (c1, r1)
        return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    labels = gpd.GeoDataFrame(
        {"label": ["dark", "bright", "dark"]},
        geometry=[box(50, 5, 70, 30), box(5, 60, 30, 90), box(2, 2, 12, 40)],
        crs="EPSG:32633",
    )
    pyogrio.write_dataframe(labels, d / "labels.gpkg", layer="polygons")
    points = gpd.GeoDataFrame(
        {"label": ["bright"]},
        geometry=[shapely.Point(*(t @ (18.5, 28.5)))],
        crs="EPSG:32633",
    )
    pyogrio.write_dataframe(points, d / "labels.gpkg", layer="points")
    write_tiny_unet(d, tile_size=64, receptive_field=25, overlap=16)
    return {
        "dir": d,
        "scene": scene,
        "truth": d / "truth.tif",
        "labels": d / "labels.gpkg",
        "spec": d / "base.yaml",
    }
