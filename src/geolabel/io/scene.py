"""Open and validate scenes: the only place where input rasters are read.

A :class:`Scene` is a validated handle on a GeoTIFF/COG (or, when allowed, a VRT): its
:class:`~geolabel.grid.SceneGrid`, the selected bands, how nodata is known, and
windowed reads that return the pixels plus a valid-data mask. Whole-scene arrays exist
only lazily (:meth:`Scene.to_dataarray`).
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window as RioWindow

from geolabel.errors import (
    GeolabelError,
    GridError,
    NodataWarning,
    SceneReadError,
    innermost_cause,
)
from geolabel.grid import SceneGrid, TileGrid, Window
from geolabel.io._tiff_header import read_tiff_layout
from geolabel.io.limits import (
    SceneLimits,
    check_counts,
    check_dtypes,
    check_layout,
    check_size,
)

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["NodataSource", "Scene", "TileRead", "open_scene"]

logger = logging.getLogger(__name__)

NodataSource = Literal["metadata", "mask", "user", "none"]

#: Drivers geolabel opens untrusted files with. VRT is added only on request: a VRT can
#: point at any file or URL the process can reach.
SAFE_DRIVERS: tuple[str, ...] = ("GTiff",)


@dataclass(frozen=True, slots=True)
class TileRead:
    """Pixels of one read window: ``data`` ``(bands, rows, cols)`` float32 and
    ``valid`` ``(rows, cols)`` bool (False outside the scene and at nodata)."""

    data: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Scene:
    """A validated input scene.

    Attributes:
        path: the file.
        grid: its pixel grid.
        bands: 1-based band indexes read, in model order.
        band_names: the file's band descriptions for those bands (may be ``None``).
        dtype: the file's data type.
        nodata: the nodata value in use (``None`` with a mask band or no nodata).
        nodata_source: where validity comes from.
        area_or_point: the file's ``AREA_OR_POINT`` tag, copied to outputs.
        driver: the GDAL driver that opened the file.

    .. versionadded:: 0.1
    """

    path: Path
    grid: SceneGrid
    bands: tuple[int, ...]
    band_names: tuple[str | None, ...]
    dtype: str
    nodata: float | None
    nodata_source: NodataSource
    area_or_point: str
    driver: str

    @property
    def name(self) -> str:
        """File name without suffix (names the scene's output folder and files).

        A stem of dots only (``...tif`` has the stem ``..``) would name the run
        folder itself or its parent; its dots become underscores.
        """
        stem = self.path.stem
        return stem.replace(".", "_") if stem.strip(".") == "" else stem

    def open(self) -> Any:
        """A fresh rasterio dataset (one per thread; close it after use)."""
        return rasterio.open(self.path, driver=self.driver)

    def read(self, window: Window, *, dataset: Any | None = None) -> TileRead:
        """Read a window that may reach outside the scene (outside pixels are invalid).

        Raises:
            SceneReadError: the file cannot be read there.
        """
        data = np.zeros((len(self.bands), *window.shape), dtype=np.float32)
        valid = np.zeros(window.shape, dtype=bool)
        inner, raw, ok = self.read_native(window, dataset=dataset)
        if raw is None:
            return TileRead(data, valid)
        sub = inner.relative_to(window)
        data[(slice(None), *sub.slices)] = raw
        valid[sub.slices] = ok
        if not ok.all():
            np.copyto(data, np.float32(0.0), where=~valid[None])
        return TileRead(data, valid)

    def read_native(
        self, window: Window, *, dataset: Any | None = None
    ) -> tuple[Window, npt.NDArray[Any] | None, npt.NDArray[np.bool_]]:
        """The part of ``window`` inside the scene, in the file's own data type.

        Returns:
            ``(inner, data (bands, rows, cols) or None, valid (rows, cols))``: ``inner``
            is ``window`` clipped to the scene (``data`` is ``None`` when that is
            empty); nodata pixels keep their file values and are False in ``valid``.
            The tile loop normalises straight from these (one pass, no float copy).

        Raises:
            SceneReadError: the file cannot be read there.
        """
        inner = window.intersection(self.grid.window)
        if inner.height == 0 or inner.width == 0:
            return inner, None, np.zeros(inner.shape, dtype=bool)
        ds = dataset if dataset is not None else self.open()
        try:
            rw = RioWindow(inner.col_off, inner.row_off, inner.width, inner.height)
            raw = ds.read(list(self.bands), window=rw)
            ok = np.ones(inner.shape, dtype=bool)
            if self.nodata_source == "mask":
                ok &= ds.read_masks(self.bands[0], window=rw) > 0
            elif self.nodata is not None:
                nd = self.nodata
                bad = np.isnan(raw) if np.isnan(nd) else raw == nd
                ok &= ~bad.any(axis=0)
            if raw.dtype.kind == "f":
                ok &= np.isfinite(raw).all(axis=0)
        except RasterioError as err:
            raise SceneReadError(
                f"{self.path}: cannot read window {inner}: {innermost_cause(err)}"
            ) from err
        finally:
            if dataset is None:
                ds.close()
        return inner, raw, ok

    def to_dataarray(self, tiles: TileGrid | None = None) -> xr.DataArray:
        """The scene as a lazy ``(band, y, x)`` DataArray, chunked like the tile cores."""
        import rioxarray

        chunks: Any = True
        if tiles is not None:
            chunks = {"band": -1, "y": tiles.chunks[0], "x": tiles.chunks[1]}
        da = rioxarray.open_rasterio(self.path, chunks=chunks, masked=False, lock=False)
        out: xr.DataArray = da.sel(band=list(self.bands))  # type: ignore[union-attr,assignment]
        return out


@functools.lru_cache(maxsize=64)
def _zero_filled_cached(
    path: str, mtime_ns: int, size: int, bands: tuple[int, ...]
) -> bool:
    """:func:`_looks_zero_filled` once per file version (a run opens a scene 2-4 times)."""
    with rasterio.open(path) as ds:
        try:
            return _looks_zero_filled(ds, list(bands))
        except RasterioIOError as err:  # a damaged border block: the tile loop says so
            logger.debug("%s: border not checked for zero fill: %s", path, err)
            return False


#: ``(path, mtime_ns, size)`` of the files the zero-border warning was given for.
_WARNED_ZERO_BORDER: set[tuple[str, int, int]] = set()


def _looks_zero_filled(ds: Any, bands: list[int]) -> bool:
    """True when a tenth or more of the border pixels are 0 in every band."""
    h, w = ds.height, ds.width
    edges = [
        RioWindow(0, 0, w, 1),
        RioWindow(0, h - 1, w, 1),
        RioWindow(0, 0, 1, h),
        RioWindow(w - 1, 0, 1, h),
    ]
    zero = total = 0
    for win in edges:
        px = ds.read(bands, window=win).reshape(len(bands), -1)
        zero += int((px == 0).all(axis=0).sum())
        total += px.shape[1]
    return zero >= 0.1 * total


def open_scene(
    path: str | Path,
    *,
    bands: tuple[int, ...] | list[int] | None = None,
    nodata: float | None = None,
    allow_vrt: bool = False,
    allow_pixel_space: bool = False,
    limits: SceneLimits | None = None,
) -> Scene:
    """Open and validate a scene.

    The header is checked against ``limits`` before GDAL builds anything per band
    and before any pixel is read (see :mod:`geolabel.io.limits`).

    Args:
        path: a GeoTIFF or COG (a VRT only with ``allow_vrt``).
        bands: 1-based band indexes in the order the model wants; all by default.
        nodata: override the nodata value (for files that have fill but declare none).
        allow_vrt: accept VRT files (they can reference arbitrary files).
        allow_pixel_space: accept files without a CRS (outputs are in pixel space).
        limits: bands, pixels, compression ratio and block size a file may declare
            (default: :class:`~geolabel.io.limits.SceneLimits`).

    Raises:
        SceneReadError: missing/unreadable file, a driver not on the allowlist, no
            CRS, a rotated transform or GCP-only georeferencing, bad band indexes,
            a complex or unknown data type.
        ResourceLimitError: the file declares more than ``limits`` allow.

    .. versionadded:: 0.1
    """
    p = Path(path)
    if not p.exists():
        raise SceneReadError(f"{p}: no such file")
    if p.is_dir():
        raise SceneReadError(f"{p}: is a directory, not a raster file")
    lim = limits if limits is not None else SceneLimits()
    file_bytes = p.stat().st_size
    layout = read_tiff_layout(p)
    if layout is not None:
        check_layout(p, layout, file_bytes=file_bytes, limits=lim)
    drivers = list(SAFE_DRIVERS) + (["VRT"] if allow_vrt else [])
    ds = None
    errors = []
    for driver in drivers:
        try:
            ds = rasterio.open(p, driver=driver)
            break
        except (RasterioError, UnicodeDecodeError) as err:
            # GDAL quotes the (possibly shortened) path again: say it once
            first = str(err).splitlines()[0]
            errors.append(re.sub(rf"'[^']*{re.escape(p.name)}'\s*", "", first))
    if ds is None:
        hint = (
            " (VRT files need --allow-vrt)"
            if p.suffix.lower() == ".vrt" and not allow_vrt
            else ""
        )
        raise SceneReadError(f"{p}: not a readable GeoTIFF/COG{hint}: {errors[-1]}")
    try:
        with ds:
            return _check_and_validate(p, ds, bands, nodata, allow_pixel_space, lim)
    except GeolabelError:
        raise
    except (RasterioError, UnicodeDecodeError, ValueError) as err:
        # damaged metadata: a tag that is not UTF-8, a CRS GDAL cannot parse
        raise SceneReadError(
            f"{p}: damaged metadata: {type(err).__name__}: {innermost_cause(err)}"
        ) from err


def _check_and_validate(
    p: Path,
    ds: Any,
    bands: tuple[int, ...] | list[int] | None,
    nodata: float | None,
    allow_pixel_space: bool,
    lim: SceneLimits,
) -> Scene:
    """The limits GDAL's view of the file must meet, then :func:`_validate`."""
    file_bytes = p.stat().st_size
    check_counts(p, bands=ds.count, shape=(ds.height, ds.width), limits=lim)
    check_dtypes(p, ds.dtypes)
    if ds.driver == "GTiff":
        declared = sum(np.dtype(t).itemsize for t in ds.dtypes) * ds.height * ds.width
        check_size(p, declared_bytes=declared, file_bytes=file_bytes, limits=lim)
    return _validate(p, ds, bands, nodata, allow_pixel_space)


def _validate(
    p: Path,
    ds: Any,
    bands: tuple[int, ...] | list[int] | None,
    nodata: float | None,
    allow_pixel_space: bool,
) -> Scene:
    if ds.crs is None and not ds.gcps[0] and not allow_pixel_space:
        if ds.transform.is_identity:
            raise SceneReadError(
                f"{p}: has no CRS and no geotransform; pass --allow-pixel-space to "
                "work in pixel coordinates"
            )
        raise SceneReadError(
            f"{p}: has a geotransform but no CRS; assign one (gdal_edit.py -a_srs) or "
            "pass --allow-pixel-space"
        )
    if ds.gcps[0] and ds.transform.is_identity:
        raise SceneReadError(
            f"{p}: is georeferenced only by GCPs; warp it to a grid first (gdalwarp)"
        )
    try:
        grid = SceneGrid(
            (ds.height, ds.width), ds.transform, ds.crs.to_wkt() if ds.crs else None
        )
    except GridError as err:
        raise SceneReadError(f"{p}: {err}") from err
    sel = (
        tuple(range(1, ds.count + 1)) if bands is None else tuple(int(b) for b in bands)
    )
    if not sel or any(b < 1 or b > ds.count for b in sel):
        raise SceneReadError(f"{p}: band indexes {list(sel)!r} outside 1..{ds.count}")
    source: NodataSource
    nd: float | None
    flags = [ds.mask_flag_enums[b - 1] for b in sel]
    if nodata is not None:
        source, nd = "user", float(nodata)
    elif ds.nodatavals[sel[0] - 1] is not None:
        source, nd = "metadata", float(ds.nodatavals[sel[0] - 1])
    elif any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags):
        source, nd = "mask", None
    else:
        source, nd = "none", None
        st = p.stat()
        version = (str(p.resolve()), st.st_mtime_ns, st.st_size)
        if version not in _WARNED_ZERO_BORDER and _zero_filled_cached(
            *version, tuple(sel)
        ):
            # once per file version: a run opens a scene 2-4 times (bands, the
            # precision check, the run, finalize), and Python's own once-per-location
            # filter is reset whenever a library touches the warning filters
            _WARNED_ZERO_BORDER.add(version)
            warnings.warn(
                f"{p}: declares no nodata but much of its border is 0 in every band; pass "
                "--nodata 0 if that is fill",
                NodataWarning,
                stacklevel=3,
            )
    names = tuple(ds.descriptions[b - 1] for b in sel)
    logger.debug(
        "opened %s: %s, bands %s, nodata %s (%s)", p, grid.shape, sel, nd, source
    )
    return Scene(
        path=p,
        grid=grid,
        bands=sel,
        band_names=names,
        dtype=str(ds.dtypes[sel[0] - 1]),
        nodata=nd,
        nodata_source=source,
        area_or_point=str(ds.tags().get("AREA_OR_POINT", "Area")),
        driver=str(ds.driver),
    )
