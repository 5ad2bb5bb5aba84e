"""Synthetic GeoTIFF scenes built by code with fixed seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine

__all__ = ["make_scene"]


def make_scene(
    path: str | Path,
    *,
    shape: tuple[int, int] = (100, 120),
    bands: int = 3,
    dtype: str = "float32",
    crs: str | None = "EPSG:32633",
    transform: Affine | None = None,
    nodata: float | None = None,
    nodata_region: tuple[slice, slice] | None = None,
    alpha: bool = False,
    seed: int = 0,
    data: npt.NDArray[Any] | None = None,
    descriptions: list[str] | None = None,
    tiled: bool = True,
) -> Path:
    """Write a GeoTIFF with smooth random content and return its path.

    Args:
        path: where to write.
        shape: ``(rows, cols)``.
        bands: data bands (an alpha band is added with ``alpha``).
        dtype: pixel type.
        crs: CRS or ``None``.
        transform: affine (default: 10 m pixels at x=500000, y=4000000).
        nodata: declared nodata value.
        nodata_region: ``(rows, cols)`` slices set to nodata (or alpha 0).
        alpha: add an alpha band as the validity mask.
        seed: random seed.
        data: explicit ``(bands, rows, cols)`` pixels.
        descriptions: band names.
        tiled: write 16x16-multiple tiles.
    """
    p = Path(path)
    rng = np.random.default_rng(seed)
    if data is None:
        base = rng.normal(size=(bands, shape[0] // 4 + 2, shape[1] // 4 + 2))
        up = np.kron(base, np.ones((4, 4)))[:, : shape[0], : shape[1]]
        data = (up + 0.1 * rng.normal(size=up.shape)) * 20 + 100
    arr = np.asarray(data).astype(dtype)
    count = arr.shape[0] + (1 if alpha else 0)
    if transform is None:
        transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    if tiled and arr.shape[1] >= 16 and arr.shape[2] >= 16:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    if nodata_region is not None and nodata is not None and not alpha:
        arr[(slice(None), *nodata_region)] = nodata
    with rasterio.open(p, "w", **profile) as ds:
        ds.write(arr, indexes=list(range(1, arr.shape[0] + 1)))
        if alpha:
            a = np.full(arr.shape[1:], 255, dtype=dtype)
            if nodata_region is not None:
                a[nodata_region] = 0
            ds.write(a, count)
            ds.colorinterp = [*ds.colorinterp[:-1], rasterio.enums.ColorInterp.alpha]
        for i, d in enumerate(descriptions or [], start=1):
            ds.set_band_description(i, d)
    return p
