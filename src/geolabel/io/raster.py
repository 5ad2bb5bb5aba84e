"""Raster outputs: tiled GeoTIFFs written window by window, then turned into COGs.

Writes never leave a half-written file under its final name: data goes to
``NAME.partial.tif``, the COG copy to ``NAME.partial.cog``, and an atomic rename puts it
in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
from rasterio.windows import Window as RioWindow

from geolabel.grid import SceneGrid, Window

__all__ = ["CogWriter", "atomic_replace"]


def atomic_replace(tmp: Path, final: Path) -> None:
    """fsync ``tmp`` and rename it over ``final``."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


class CogWriter:
    """Write a scene-sized raster window by window; on success, publish it as a COG.

    Args:
        path: final ``.tif`` path.
        grid: the scene grid (CRS and transform are copied exactly).
        count: bands.
        dtype: numpy dtype name.
        nodata: nodata value (or ``None``).
        resampling: overview resampling (``nearest`` for classes, ``average`` otherwise).
        colormap: palette for band 1 (``{value: (r, g, b, a)}``).
        descriptions: band descriptions.
        tags: dataset metadata tags; ``band_tags`` per band.
        nbits: write an ``NBITS`` image (smaller masks).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        path: Path,
        grid: SceneGrid,
        *,
        count: int,
        dtype: str,
        nodata: float | None,
        resampling: str = "nearest",
        colormap: dict[int, tuple[int, int, int, int]] | None = None,
        descriptions: list[str] | None = None,
        tags: dict[str, str] | None = None,
        band_tags: list[dict[str, str]] | None = None,
        nbits: int | None = None,
        area_or_point: str = "Area",
    ) -> None:
        """Create the temporary GeoTIFF."""
        self.path = path
        self.tmp = path.with_name(path.stem + ".partial.tif")
        self.cog_tmp = path.with_name(path.stem + ".partial.cog")
        for p in (self.tmp, self.cog_tmp):
            p.unlink(missing_ok=True)
        self.resampling = resampling
        self.nbits = nbits
        self.dtype = dtype
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "width": grid.width,
            "height": grid.height,
            "count": count,
            "dtype": dtype,
            "crs": grid.crs,
            "transform": grid.transform,
            "nodata": nodata,
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "ZSTD",
            # the temporary file is rewritten block by block (core windows straddle its
            # blocks) and compressed again into the COG: the fastest level is enough
            "zstd_level": 1,
            "BIGTIFF": "IF_SAFER",
        }
        self.ds = rasterio.open(self.tmp, "w", **profile)
        if colormap:
            self.ds.write_colormap(1, colormap)
        for i, d in enumerate(descriptions or [], start=1):
            self.ds.set_band_description(i, d)
        self.ds.update_tags(AREA_OR_POINT=area_or_point, **(tags or {}))
        for i, bt in enumerate(band_tags or [], start=1):
            self.ds.update_tags(i, **bt)

    def write(self, window: Window, data: npt.NDArray[Any]) -> None:
        """Write ``(bands, rows, cols)`` (or ``(rows, cols)`` for one band)."""
        arr = data[None] if data.ndim == 2 else data
        rw = RioWindow(window.col_off, window.row_off, window.width, window.height)
        self.ds.write(np.asarray(arr, dtype=self.dtype), window=rw)

    def close(self) -> Path:
        """Finish: build the COG and rename it into place; returns the final path."""
        self.ds.close()
        opts: dict[str, Any] = {
            "driver": "COG",
            "COMPRESS": "DEFLATE",
            "NUM_THREADS": "ALL_CPUS",  # compression threads; the bytes do not depend on them
            "BLOCKSIZE": 512,
            "OVERVIEW_RESAMPLING": self.resampling.upper(),
            "BIGTIFF": "IF_SAFER",
        }
        if self.nbits is not None:
            opts["NBITS"] = self.nbits
        if np.dtype(self.dtype).kind == "f":
            opts["PREDICTOR"] = "YES"
        rasterio.shutil.copy(str(self.tmp), str(self.cog_tmp), **opts)
        self.tmp.unlink(missing_ok=True)
        aux = self.tmp.with_name(self.tmp.name + ".aux.xml")
        aux.unlink(missing_ok=True)
        atomic_replace(self.cog_tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial files."""
        if not self.ds.closed:
            self.ds.close()
        for p in (self.tmp, self.cog_tmp):
            p.unlink(missing_ok=True)

    def __enter__(self) -> CogWriter:
        """Context manager entry."""
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Abort on error (publishing is explicit via :meth:`close`)."""
        if et is not None:
            self.abort()
