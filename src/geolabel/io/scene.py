"""Open and validate scenes: the only place where input rasters are read.

A :class:`Scene` is a validated handle on a GeoTIFF/COG (or, when allowed, a VRT): its
:class:`~geolabel.grid.SceneGrid`, the selected bands, how nodata is known, and
windowed reads that return the pixels plus a valid-data mask. Whole-scene arrays exist
only lazily (:meth:`Scene.to_dataarray`).

A scene is a local file, a remote COG (``https://...``, ``s3://...``; read with byte
ranges from allowlisted hosts only, see :mod:`geolabel.io.remote`) or a STAC item whose
assets are the bands (see :mod:`geolabel.io.stac`).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import warnings
from collections.abc import Iterable, Sequence
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
from geolabel.io._quiet import pixel_space_ok
from geolabel.io._tiff_header import TiffLayout, read_tiff_layout
from geolabel.io.limits import (
    SceneLimits,
    check_counts,
    check_dtypes,
    check_layout,
    check_size,
)
from geolabel.io.remote import RemoteSource, check_allowed, parse_source, remote_env
from geolabel.io.stac import Resampling, StacSource, is_stac_path, stac_source

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["NodataSource", "Scene", "ScenePath", "TileRead", "open_scene"]

logger = logging.getLogger(__name__)

NodataSource = Literal["metadata", "mask", "user", "none"]
#: Where a scene's pixels are: a file, a URL, or a STAC item (a VRT over its assets).
ScenePath = Path | RemoteSource | StacSource

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
        path: the file, the URL (:class:`~geolabel.io.remote.RemoteSource`) or the
            STAC item (:class:`~geolabel.io.stac.StacSource`); ``str()`` names it.
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

    path: ScenePath
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

    @property
    def provenance(self) -> dict[str, Any]:
        """What the run record keeps of the source: the URL, or the STAC item id and
        its band assets (empty for a local file)."""
        if isinstance(self.path, StacSource):
            return self.path.provenance()
        if isinstance(self.path, RemoteSource):
            return {"url": self.path.url}
        return {}

    def open(self) -> Any:
        """A fresh rasterio dataset (one per thread; close it after use)."""
        with remote_env(self.path), pixel_space_ok(self.grid.crs is None):
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
        rw = RioWindow(inner.col_off, inner.row_off, inner.width, inner.height)
        try:
            with remote_env(self.path):  # a STAC VRT opens its remote assets lazily
                raw = ds.read(list(self.bands), window=rw)
                ok = np.ones(inner.shape, dtype=bool)
                if self.nodata_source == "mask":
                    ok &= ds.read_masks(self.bands[0], window=rw) > 0
            if self.nodata is not None and self.nodata_source != "mask":
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
        with remote_env(self.path):
            da = rioxarray.open_rasterio(
                os.fspath(self.path), chunks=chunks, masked=False, lock=False
            )
        out: xr.DataArray = da.sel(band=list(self.bands))  # type: ignore[union-attr,assignment]
        return out


@functools.lru_cache(maxsize=64)
def _zero_filled_cached(
    path: str, mtime_ns: int, size: int, bands: tuple[int, ...]
) -> bool:
    """:func:`_looks_zero_filled` once per file version (a run opens a scene 2-4 times)."""
    with pixel_space_ok(), rasterio.open(path) as ds:
        try:
            return _looks_zero_filled(ds, list(bands))
        except RasterioIOError as err:  # a damaged border block: the tile loop says so
            logger.debug("%s: border not checked for zero fill: %s", path, err)
            return False


def _zero_filled(
    p: ScenePath, ds: Any, version: tuple[str, int, int], bands: tuple[int, ...]
) -> bool:
    """:func:`_looks_zero_filled` of a file (cached per version) or of an open remote
    or STAC dataset (cached per name: each check is a few range requests)."""
    if isinstance(p, Path):
        return _zero_filled_cached(*version, bands)
    key = (version[0], bands)
    if key not in _ZERO_FILLED_REMOTE:
        try:
            _ZERO_FILLED_REMOTE[key] = _looks_zero_filled(ds, list(bands))
        except RasterioIOError as err:
            logger.debug("%s: border not checked for zero fill: %s", p, err)
            _ZERO_FILLED_REMOTE[key] = False
    return _ZERO_FILLED_REMOTE[key]


#: :func:`_zero_filled` of remote and STAC scenes, by name and bands.
_ZERO_FILLED_REMOTE: dict[tuple[str, tuple[int, ...]], bool] = {}

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
    path: str | os.PathLike[str],
    *,
    bands: tuple[int, ...] | list[int] | None = None,
    nodata: float | None = None,
    allow_vrt: bool = False,
    allow_pixel_space: bool = False,
    limits: SceneLimits | None = None,
    allow_remote: Iterable[str] = (),
    band_names: Sequence[str] | None = None,
    stac_resample: Resampling | None = None,
) -> Scene:
    """Open and validate a scene.

    The header is checked against ``limits`` before GDAL builds anything per band
    and before any pixel is read (see :mod:`geolabel.io.limits`).

    Args:
        path: a GeoTIFF or COG (a VRT only with ``allow_vrt``); an ``https://`` or
            ``s3://`` URL of one (``allow_remote`` must name its host or bucket); or a
            STAC Item JSON (``item.json``, ``items.json#ITEM_ID`` for one item of an
            ItemCollection) whose assets are the bands.
        bands: 1-based band indexes in the order the model wants; all by default.
        nodata: override the nodata value (for files that have fill but declare none).
        allow_vrt: accept VRT files (they can reference arbitrary files).
        allow_pixel_space: accept files without a CRS (outputs are in pixel space).
        limits: bands, pixels, compression ratio and block size a file may declare
            (default: :class:`~geolabel.io.limits.SceneLimits`).
        allow_remote: hosts (and ``s3://BUCKET``) remote scenes may be read from
            (see :mod:`geolabel.io.remote`); empty: no network reads.
        band_names: for a STAC item, the bands to take, in order, matched to asset
            keys or ``eo:bands`` names (default: every GeoTIFF asset).
        stac_resample: for a STAC item whose assets lie on different grids, resample
            them to the finest with this method (default: refuse such items).

    Raises:
        SceneReadError: missing/unreadable file, a driver not on the allowlist, no
            CRS, a rotated transform or GCP-only georeferencing, bad band indexes,
            a complex or unknown data type, a STAC item whose bands cannot be found.
        RemoteNotAllowedError: a URL whose host is not on ``allow_remote``.
        ResourceLimitError: the file declares more than ``limits`` allow.

    .. versionadded:: 0.1
    """
    lim = limits if limits is not None else SceneLimits()
    src = parse_source(path)
    allow = tuple(allow_remote)
    if isinstance(src, RemoteSource):
        check_allowed(src, allow)
        return _open(src, ("GTiff",), bands, nodata, allow_pixel_space, lim, None)
    if is_stac_path(src):
        item = stac_source(
            src,
            band_names=band_names,
            resample=stac_resample,
            open_asset=lambda href: open_scene(
                href,
                nodata=nodata,
                allow_pixel_space=allow_pixel_space,
                limits=lim,
                allow_remote=allow,
            ),
        )
        return _open(item, ("VRT",), bands, nodata, allow_pixel_space, lim, None)
    p = src
    if not p.exists():
        raise SceneReadError(f"{p}: no such file")
    if p.is_dir():
        raise SceneReadError(f"{p}: is a directory, not a raster file")
    file_bytes = p.stat().st_size
    layout = read_tiff_layout(p)
    if layout is not None:
        check_layout(p, layout, file_bytes=file_bytes, limits=lim)
    drivers = list(SAFE_DRIVERS) + (["VRT"] if allow_vrt else [])
    return _open(p, drivers, bands, nodata, allow_pixel_space, lim, file_bytes)


def _open(
    p: ScenePath,
    drivers: Sequence[str],
    bands: tuple[int, ...] | list[int] | None,
    nodata: float | None,
    allow_pixel_space: bool,
    lim: SceneLimits,
    file_bytes: int | None,
) -> Scene:
    """Open ``p`` with the first of ``drivers`` that reads it, then validate it."""
    ds = None
    errors = []
    for driver in drivers:
        try:
            # a file without georeferencing is refused or allowed below, in one line
            with remote_env(p), pixel_space_ok():
                ds = rasterio.open(p, driver=driver)
            break
        except (RasterioError, UnicodeDecodeError) as err:
            # GDAL quotes the (possibly shortened) path again: say it once
            first = str(err).splitlines()[0]
            errors.append(re.sub(rf"'[^']*{re.escape(p.name)}'\s*", "", first))
    if ds is None:
        hint = (
            " (VRT files need --allow-vrt)"
            if p.suffix.lower() == ".vrt" and "VRT" not in drivers
            else ""
        )
        raise SceneReadError(f"{p}: not a readable GeoTIFF/COG{hint}: {errors[-1]}")
    try:
        with ds, remote_env(p):
            return _check_and_validate(
                p, ds, bands, nodata, allow_pixel_space, lim, file_bytes
            )
    except GeolabelError:
        raise
    except (RasterioError, UnicodeDecodeError, ValueError) as err:
        # damaged metadata: a tag that is not UTF-8, a CRS GDAL cannot parse
        raise SceneReadError(
            f"{p}: damaged metadata: {type(err).__name__}: {innermost_cause(err)}"
        ) from err


def _check_and_validate(
    p: ScenePath,
    ds: Any,
    bands: tuple[int, ...] | list[int] | None,
    nodata: float | None,
    allow_pixel_space: bool,
    lim: SceneLimits,
    file_bytes: int | None,
) -> Scene:
    """The limits GDAL's view of the file must meet, then :func:`_validate`.

    ``file_bytes`` is ``None`` where the size is not known without another request
    (remote files, STAC items): the compression-ratio check is then left out, and a
    remote file's block layout is taken from GDAL instead of the TIFF header.
    """
    check_counts(p, bands=ds.count, shape=(ds.height, ds.width), limits=lim)
    check_dtypes(p, ds.dtypes)
    if isinstance(p, RemoteSource):
        rows, cols = ds.block_shapes[0]
        comp = ds.compression
        layout = TiffLayout(
            shape=(ds.height, ds.width),
            samples=ds.count,
            bits=np.dtype(ds.dtypes[0]).itemsize * 8,
            sample_format=1,
            compression=1 if comp is None else 2,
            block=(rows, cols),
            planar=1
            if ds.interleaving is None or ds.interleaving.name == "PIXEL"
            else 2,
        )
        check_layout(p, layout, file_bytes=2**62, limits=lim)
    if ds.driver == "GTiff" and file_bytes is not None:
        declared = sum(np.dtype(t).itemsize for t in ds.dtypes) * ds.height * ds.width
        check_size(p, declared_bytes=declared, file_bytes=file_bytes, limits=lim)
    return _validate(p, ds, bands, nodata, allow_pixel_space)


def _validate(
    p: ScenePath,
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
    # rasterio computes these per-band tuples anew at every attribute access: read
    # each once (indexing them in the loop made a 1000-band header quadratic in GDAL
    # calls: minutes of CPU and gigabytes of mask bands)
    all_flags, all_names = ds.mask_flag_enums, ds.descriptions
    flags = [all_flags[b - 1] for b in sel]
    if nodata is not None:
        source, nd = "user", float(nodata)
    elif ds.nodatavals[sel[0] - 1] is not None:
        source, nd = "metadata", float(ds.nodatavals[sel[0] - 1])
    elif any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags):
        source, nd = "mask", None
    else:
        source, nd = "none", None
        if isinstance(p, Path):
            st = p.stat()
            version = (str(p.resolve()), st.st_mtime_ns, st.st_size)
        else:  # a URL or a STAC item: the name stands for the version
            version = (str(p), 0, 0)
        if version not in _WARNED_ZERO_BORDER and _zero_filled(
            p, ds, version, tuple(sel)
        ):
            # once per file version: a run opens a scene 2-4 times (bands, the
            # precision check, the run, finalize), and Python's own once-per-location
            # filter is reset whenever a library touches the warning filters
            _WARNED_ZERO_BORDER.add(version)
            warnings.warn(
                f"{p}: declares no nodata but much of its border is 0 in every band; pass "
                "--nodata 0 if that is fill",
                NodataWarning,
                stacklevel=4,
            )
    names = tuple(all_names[b - 1] for b in sel)
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
