"""Raster outputs: tiled GeoTIFFs written window by window, then turned into COGs.

Writes never leave a half-written file under its final name: data goes to
``NAME.partial.tif``, the COG copy to ``NAME.partial.cog``, and an atomic rename puts it
in place.

Class masks are stored with the fewest bits that hold every class index and a nodata
value (:func:`mask_encoding`): 1, 2, 4 or 8 bits (GDAL ``NBITS`` below 8), else 16.
The depths 3, 5, 6 and 7 are skipped on purpose: their pixels straddle byte boundaries,
which DEFLATE compresses worse than the next power of two (the demo mask tiled 6 x 6:
3 bits +12 %, 5-7 bits +18-30 % over 4 bits, all larger than at 8 bits), and readers
other than GDAL may refuse them (Pillow 13 opens 1/2/4/8-bit palette COGs, not 3 or 7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
from rasterio.windows import Window as RioWindow

from geolabel.errors import ConfigError
from geolabel.grid import SceneGrid, Window

__all__ = ["MASK_BITS", "CogWriter", "MaskEncoding", "atomic_replace", "mask_encoding"]

#: bit depths a class mask is stored with, smallest first.
MASK_BITS = (1, 2, 4, 8, 16)


@dataclass(frozen=True, slots=True)
class MaskEncoding:
    """How a class mask is stored: bits per pixel and the nodata value.

    Class indexes are ``0 .. 2**bits - 2``; the largest value, ``2**bits - 1``, is
    nodata.

    .. versionadded:: 0.1
    """

    bits: int

    @property
    def nodata(self) -> int:
        """The nodata value, ``2**bits - 1`` (1, 3, 15, 255 or 65535)."""
        return int(2**self.bits - 1)

    @property
    def dtype(self) -> str:
        """The numpy / GDAL data type: ``uint8`` up to 8 bits, else ``uint16``."""
        return "uint8" if self.bits <= 8 else "uint16"

    @property
    def nbits(self) -> int | None:
        """The GDAL ``NBITS`` creation option (``None`` for whole bytes)."""
        return self.bits if self.bits < 8 else None


def mask_encoding(num_classes: int) -> MaskEncoding:
    """The smallest :data:`MASK_BITS` depth holding ``num_classes`` classes + nodata.

    Args:
        num_classes: number of classes (indexes ``0 .. num_classes - 1``).

    Returns:
        The encoding with ``num_classes + 1 <= 2**bits`` (e.g. 2 classes: 2 bits,
        nodata 3; 7 classes: 4 bits, nodata 15; 300 classes: 16 bits, nodata 65535).

    Raises:
        ConfigError: fewer than 1 or more than 65535 classes.

    .. versionadded:: 0.1
    """
    for bits in MASK_BITS:
        if 1 <= num_classes < 2**bits:
            return MaskEncoding(bits)
    raise ConfigError(
        f"a class mask holds 1 to {2 ** MASK_BITS[-1] - 1} classes, got {num_classes!r}"
    )


def atomic_replace(tmp: Path, final: Path) -> None:
    """fsync ``tmp`` and rename it over ``final``."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


#: Largest temporary GeoTIFF written uncompressed (bytes of pixel data).
TEMP_RAW_BYTES = 4 * 1024**3


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
        nbits: bits per pixel below 8 (GDAL ``NBITS``, 1-7; class masks, see
            :func:`mask_encoding`); the overviews keep it.

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
            "BIGTIFF": "IF_SAFER",
        }
        # The temporary file is written once (core windows straddle its blocks, so some
        # blocks are completed by a neighbour) and read once by the COG copy. Up to
        # TEMP_RAW_BYTES it stays uncompressed: compressing it costs more CPU than the
        # I/O it saves (5000² float32: finalize 8.8 s vs 11.6 s with ZSTD level 1).
        # Larger ones take ZSTD level 1, so temporary disk use stays bounded.
        if grid.width * grid.height * count * np.dtype(dtype).itemsize > TEMP_RAW_BYTES:
            profile.update(compress="ZSTD", zstd_level=1)
        if nbits is not None:
            # on the source, not as a COG option: the COG's GTiff copy and its
            # overviews inherit the source band's NBITS (checked with GDAL 3.6.2, which
            # QGIS 3.22 uses, and 3.10.3), while the COG driver of GDAL 3.6 has no
            # NBITS option
            profile["nbits"] = nbits
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
