"""Scene validation: nodata sources, georeferencing refusals, driver allowlist."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

import geolabel.io.scene as scene_module
from geolabel.errors import NodataWarning, SceneReadError
from geolabel.grid import Window
from geolabel.io.scene import open_scene
from geolabel.testing import make_scene

from ..conftest import LANDSAT8


def test_nodata_from_metadata(tmp_path: Path) -> None:
    p = make_scene(
        tmp_path / "a.tif", nodata=-1.0, nodata_region=(slice(0, 5), slice(0, 5))
    )
    s = open_scene(p)
    assert s.nodata == -1.0 and s.nodata_source == "metadata"
    r = s.read(Window(-2, -2, 10, 10))
    assert not r.valid[:7, :7].any() and r.valid[8:, 8:].all()
    assert (r.data[:, ~r.valid] == 0).all()


def test_nodata_from_alpha_band(tmp_path: Path) -> None:
    p = make_scene(
        tmp_path / "a.tif",
        bands=3,
        dtype="uint8",
        alpha=True,
        nodata_region=(slice(0, 10), slice(0, 10)),
    )
    s = open_scene(p, bands=[1, 2, 3])
    assert s.nodata_source == "mask"
    r = s.read(s.grid.window)
    assert not r.valid[:10, :10].any() and r.valid[10:, 10:].all()


def test_user_nodata_override_and_zero_fill_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scene_module, "_WARNED_ZERO_BORDER", set())
    with pytest.warns(NodataWarning, match="--nodata 0"):
        s = open_scene(LANDSAT8)
    assert s.nodata is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", NodataWarning)  # once per file version
        open_scene(LANDSAT8)
        open_scene(LANDSAT8, bands=[1, 2])
    s = open_scene(LANDSAT8, nodata=0)
    assert s.nodata_source == "user"
    r = s.read(s.grid.window)
    assert 0.10 < 1 - r.valid.mean() < 0.25  # ~16 % zero fill
    assert s.grid.transform.f < 0  # negative northings kept as they are


def test_refuses_missing_crs(tmp_path: Path) -> None:
    p = make_scene(tmp_path / "a.tif", crs=None)
    with pytest.raises(SceneReadError, match="no CRS"):
        open_scene(p)
    assert open_scene(p, allow_pixel_space=True).grid.crs is None


def test_refuses_rotated_transform(tmp_path: Path) -> None:
    p = make_scene(tmp_path / "a.tif", transform=Affine(10, 2, 0, 2, -10, 0))
    with pytest.raises(SceneReadError, match="rotated"):
        open_scene(p)


def test_refuses_vrt_unless_allowed(tmp_path: Path) -> None:
    src = make_scene(tmp_path / "a.tif")
    vrt = tmp_path / "a.vrt"
    import rasterio.shutil

    rasterio.shutil.copy(src, vrt, driver="VRT")
    with pytest.raises(SceneReadError, match="allow-vrt"):
        open_scene(vrt)
    assert open_scene(vrt, allow_vrt=True).driver == "VRT"


def test_refuses_non_rasters_and_bad_bands(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff")
    with pytest.raises(SceneReadError, match=r"junk\.tif"):
        open_scene(junk)
    with pytest.raises(SceneReadError, match="no such file"):
        open_scene(tmp_path / "missing.tif")
    png = tmp_path / "a.png"
    import rasterio

    with rasterio.open(
        png, "w", driver="PNG", width=4, height=4, count=1, dtype="uint8"
    ) as ds:
        ds.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(SceneReadError):
        open_scene(png)
    with pytest.raises(SceneReadError, match="band indexes"):
        open_scene(make_scene(tmp_path / "b.tif", bands=2), bands=[3])


def test_lazy_dataarray_is_chunked_like_the_tile_cores(tmp_path: Path) -> None:
    from geolabel.grid import TileGrid

    s = open_scene(make_scene(tmp_path / "a.tif", shape=(100, 130)))
    grid = TileGrid(s.grid, 48, 8)
    da = s.to_dataarray(grid)
    assert da.chunks[1] == grid.chunks[0] and da.chunks[2] == grid.chunks[1]
    np.testing.assert_array_equal(da.values, s.read(s.grid.window).data)
