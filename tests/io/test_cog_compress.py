"""COG compression choices of CogWriter: ZSTD by default, DEFLATE on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from geolabel.grid import SceneGrid, Window
from geolabel.io.raster import RAW_OVERVIEW_TEMP, CogWriter

T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


def _write(path: Path, data: np.ndarray, **kw: object) -> Path:
    h, w = data.shape
    cw = CogWriter(
        path,
        SceneGrid((h, w), T, "EPSG:32633"),
        count=1,
        dtype="float32",
        nodata=float("nan"),
        resampling="average",
        **kw,  # type: ignore[arg-type]
    )
    for r in range(0, h, 333):  # windows straddling the 512 blocks
        win = Window(r, 0, min(333, h - r), w)
        cw.write(win, data[win.slices])
    return cw.close()


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(3)
    smooth = np.cumsum(rng.random((1100, 1300), dtype=np.float32), axis=1) / 1300
    smooth[:40, :70] = np.nan
    return smooth.astype(np.float32)


@pytest.mark.parametrize(
    ("compress", "name"), [(None, "zstd"), ("zstd", "zstd"), ("deflate", "deflate")]
)
def test_compression_is_valid_cog_with_same_pixels(
    tmp_path: Path, data: np.ndarray, compress: str | None, name: str
) -> None:
    kw = {} if compress is None else {"compress": compress}
    path = _write(tmp_path / "c.tif", data, **kw)
    valid, errors, warnings = cog_validate(str(path))
    assert valid and errors == [] and warnings == [], (errors, warnings)
    with rasterio.open(path) as ds:
        assert ds.compression is not None and ds.compression.value.lower() == name
        assert ds.overviews(1) == [2, 4]
        np.testing.assert_array_equal(ds.read(1), data)
    assert not list(tmp_path.glob("*.partial*"))


def test_raw_overview_temp_changes_time_not_bytes(
    tmp_path: Path, data: np.ndarray
) -> None:
    plain = _write(tmp_path / "a.tif", data)
    with rasterio.Env(**RAW_OVERVIEW_TEMP):
        raw = _write(tmp_path / "b.tif", data)
    assert plain.read_bytes() == raw.read_bytes()


def test_unknown_compression_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compress must be one of zstd, deflate"):
        CogWriter(
            tmp_path / "x.tif",
            SceneGrid((10, 10), T, "EPSG:32633"),
            count=1,
            dtype="uint8",
            nodata=None,
            compress="lzw",
        )
