"""STAC items as scenes: one COG asset per band, stacked into one VRT.

A STAC Item (``item.json``) or one item of an ItemCollection (``items.json#ITEM_ID``)
is a scene whose bands are assets. The bands a model wants are matched, in its order,
to asset keys or to ``eo:bands`` ``common_name``/``name`` (case-insensitive; a
multi-band asset contributes the band its ``eo:bands`` entry names). Each asset is
opened and validated as a scene of its own (limits, allowlist for remote hrefs), then
the bands are stacked into a VRT document held in memory (:class:`StacSource`;
``os.fspath`` of it is the XML, which GDAL opens as a dataset).

Assets on different grids are refused unless a resampling method is given: they are
then resampled to the finest grid among them (they must share the CRS and extent).
The run record keeps the item id and the asset of each band (:meth:`StacSource.provenance`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from xml.sax.saxutils import escape

import numpy as np
import pystac
from pystac.errors import STACError, STACTypeError

from geolabel.errors import SceneReadError
from geolabel.io.remote import is_remote

if TYPE_CHECKING:
    from geolabel.io.scene import Scene

__all__ = [
    "RESAMPLING",
    "Resampling",
    "StacSource",
    "expand_stac_items",
    "is_stac_path",
    "stac_source",
]

logger = logging.getLogger(__name__)

Resampling = Literal["nearest", "bilinear", "cubic", "average", "mode"]
#: Resampling methods of assets on coarser grids (GDAL VRT names).
RESAMPLING: tuple[str, ...] = ("nearest", "bilinear", "cubic", "average", "mode")
#: Media types of raster assets taken when no band names are asked for.
_TIFF_TYPES = ("image/tiff", "image/vnd.stac.geotiff")
_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
}


@dataclass(frozen=True, slots=True)
class StacSource:
    """A STAC item as a scene: ``str()`` is the item (``items.json#ID``), ``os.fspath``
    the VRT document that stacks its band assets.

    Attributes:
        href: the item JSON as given (with ``#ITEM_ID`` for an ItemCollection).
        item_id: the item's id (names the scene's outputs).
        bands: ``(band name, asset key, asset href, band in asset)`` per band.
        vrt: the VRT XML.
        resampling: the method assets on coarser grids were resampled with.

    .. versionadded:: 0.1
    """

    href: str
    item_id: str
    bands: tuple[tuple[str, str, str, int], ...]
    vrt: str
    resampling: str | None = None

    def __str__(self) -> str:
        """The item JSON as given."""
        return self.href

    def __fspath__(self) -> str:
        """The VRT document (GDAL opens XML text as a dataset)."""
        return self.vrt

    @property
    def name(self) -> str:
        """The item id (stands for a file name)."""
        return self.item_id

    @property
    def stem(self) -> str:
        """The item id (names the output folder)."""
        return self.item_id

    @property
    def suffix(self) -> str:
        """``.json``."""
        return ".json"

    def provenance(self) -> dict[str, Any]:
        """The item id and the asset of every band, as the run record keeps them."""
        return {
            "stac_item": self.item_id,
            "stac_assets": {b[0]: {"asset": b[1], "href": b[2]} for b in self.bands},
            "stac_resampling": self.resampling,
        }


def is_stac_path(path: object) -> bool:
    """True for a local ``.json`` file (``#ITEM_ID`` allowed): a STAC item input."""
    if not isinstance(path, (str, Path)):
        return False
    return str(path).split("#", 1)[0].lower().endswith(".json")


def _load(file: str) -> list[pystac.Item]:
    """The items of a STAC Item or ItemCollection file."""
    try:
        doc = json.loads(Path(file).read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("type") == "Feature":
            return [pystac.Item.from_file(file)]
        return list(pystac.ItemCollection.from_file(file))
    except (STACError, STACTypeError, ValueError, KeyError, TypeError, OSError) as err:
        raise SceneReadError(
            f"{file}: not a STAC Item or ItemCollection: {type(err).__name__}: {err}"
        ) from err


def _read_item(href: str) -> pystac.Item:
    """The item of ``href`` (``items.json#ID`` picks one of an ItemCollection)."""
    file, _, wanted = href.partition("#")
    if is_remote(file):
        raise SceneReadError(
            f"{href}: STAC items are read from local files; save the item JSON first"
        )
    if not Path(file).is_file():
        raise SceneReadError(f"{file}: no such file")
    items = _load(file)
    if wanted:
        found = [i for i in items if i.id == wanted]
        if not found:
            ids = ", ".join(i.id for i in items[:10])
            raise SceneReadError(f"{href}: no item {wanted!r} (items: {ids})")
        return found[0]
    if len(items) != 1:
        raise SceneReadError(
            f"{file}: an ItemCollection of {len(items)} items; name one as "
            f"{file}#ITEM_ID"
        )
    return items[0]


def expand_stac_items(paths: Sequence[str]) -> tuple[str, ...]:
    """Inputs with each ItemCollection file replaced by one ``FILE#ITEM_ID`` per item.

    Other paths (and URLs, and items already named with ``#``) are kept as they are.

    A ``.json`` input that is not STAC is kept too (opening it says why).
    """
    out: list[str] = []
    for p in paths:
        if not is_stac_path(p) or "#" in p or is_remote(p) or not Path(p).is_file():
            out.append(p)
            continue
        try:
            items = _load(p)
        except SceneReadError:  # the scene fails alone, with this message, when run
            out.append(p)
            continue
        out.extend([p] if len(items) == 1 else [f"{p}#{i.id}" for i in items])
    return tuple(out)


def _band_keys(asset: pystac.Asset) -> list[list[str]]:
    """Names each band of an asset answers to (``eo:bands`` name and common name)."""
    bands = asset.extra_fields.get("eo:bands") or []
    return [
        [str(b[k]).lower() for k in ("name", "common_name") if b.get(k)]
        for b in bands
        if isinstance(b, dict)
    ]


def _is_raster(asset: pystac.Asset) -> bool:
    media = (asset.media_type or "").split(";")[0].strip()
    return media in _TIFF_TYPES or asset.href.lower().endswith((".tif", ".tiff"))


def _match_bands(
    item: pystac.Item, band_names: Sequence[str] | None, where: str, file: str
) -> list[tuple[str, str, str, int]]:
    """``(band name, asset key, absolute href, 1-based band)`` per wanted band."""
    assets = {k: a for k, a in item.assets.items() if _is_raster(a)}

    base = Path(file).parent

    def href(a: pystac.Asset) -> str:
        h = str(a.get_absolute_href() or a.href)
        if is_remote(h) or "://" in h:
            return h
        return str((base / h).resolve()) if not Path(h).is_absolute() else h

    if band_names is None:
        return [(k, k, href(a), 1) for k, a in assets.items()]
    found = []
    for name in band_names:
        low = name.lower()
        hit = next(
            ((k, a, 1) for k, a in assets.items() if k.lower() == low),
            None,
        ) or next(
            (
                (k, a, i + 1)
                for k, a in assets.items()
                for i, names in enumerate(_band_keys(a))
                if low in names
            ),
            None,
        )
        if hit is None:
            raise SceneReadError(
                f"{where}: no asset for band {name!r} (asset keys: "
                f"{', '.join(assets) or 'none'}; eo:bands names are matched too)"
            )
        found.append((name, hit[0], href(hit[1]), hit[2]))
    return found


def _grid_text(scene: Scene) -> str:
    g = scene.grid
    return f"{g.shape[0]} x {g.shape[1]} px at {abs(g.transform.a):g} x {abs(g.transform.e):g}"


def stac_source(
    path: str | os.PathLike[str],
    *,
    band_names: Sequence[str] | None,
    resample: Resampling | None,
    open_asset: Callable[[str], Scene],
) -> StacSource:
    """Read a STAC item, validate each band asset with ``open_asset`` and stack them.

    Raises:
        SceneReadError: not a STAC item, a band without an asset, assets with other
            CRSs or extents, or on different grids without ``resample``.
    """
    href = os.fspath(path)
    item = _read_item(href)
    bands = _match_bands(item, band_names, href, href.partition("#")[0])
    if not bands:
        raise SceneReadError(f"{href}: item {item.id!r} has no GeoTIFF assets")
    if resample is not None and resample not in RESAMPLING:
        raise SceneReadError(
            f"{resample!r} is not a resampling method ({', '.join(RESAMPLING)})"
        )
    scenes = {b[2]: open_asset(b[2]) for b in bands}
    for name, _, h, idx in bands:
        if idx > len(scenes[h].bands):
            raise SceneReadError(f"{href}: band {name!r}: asset {h} has no band {idx}")
    grids = {s.grid for s in scenes.values()}
    target = min(
        scenes.values(), key=lambda s: abs(s.grid.transform.a * s.grid.transform.e)
    )
    if len(grids) > 1:
        listed = "; ".join(f"{n}: {_grid_text(scenes[h])}" for n, _, h, _ in bands)
        if resample is None:
            raise SceneReadError(
                f"{href}: item {item.id!r} has assets on different grids ({listed}); "
                "pass --stac-resample METHOD (stac_resample= in Python) to resample "
                "them to the finest"
            )
        _check_same_extent(href, target, list(scenes.values()))
    dtype = np.result_type(*(np.dtype(s.dtype) for s in scenes.values())).name
    vrt = _vrt(target, bands, scenes, dtype, resample if len(grids) > 1 else None)
    logger.debug(
        "STAC item %s: %d bands from %d assets", item.id, len(bands), len(scenes)
    )
    return StacSource(
        href=href,
        item_id=item.id,
        bands=tuple(bands),
        vrt=vrt,
        resampling=resample if len(grids) > 1 else None,
    )


def _check_same_extent(href: str, target: Scene, scenes: list[Scene]) -> None:
    """Refuse assets whose CRS or bounds differ from the target's (by half a pixel)."""
    tol = abs(target.grid.transform.a) / 2
    want = target.grid.bounds
    for s in scenes:
        if s.grid.crs != target.grid.crs:
            raise SceneReadError(
                f"{href}: assets {s.path} and {target.path} differ in CRS"
            )
        if any(abs(a - b) > tol for a, b in zip(s.grid.bounds, want, strict=True)):
            raise SceneReadError(
                f"{href}: asset {s.path} covers {s.grid.bounds}, not the extent of "
                f"{target.path} {want}; resampling needs assets of one extent"
            )


def _vrt(
    target: Scene,
    bands: list[tuple[str, str, str, int]],
    scenes: dict[str, Scene],
    dtype: str,
    resample: str | None,
) -> str:
    """The VRT document: one band per wanted band, on ``target``'s grid."""
    rows, cols = target.grid.shape
    gt = target.grid.transform.to_gdal()
    parts = [f'<VRTDataset rasterXSize="{cols}" rasterYSize="{rows}">']
    if target.grid.crs is not None:
        parts.append(f"<SRS>{escape(str(target.grid.crs))}</SRS>")
    parts.append(
        f"<GeoTransform>{', '.join(repr(float(v)) for v in gt)}</GeoTransform>"
    )
    for i, (name, _, h, idx) in enumerate(bands, start=1):
        s = scenes[h]
        srows, scols = s.grid.shape
        nodata = "" if s.nodata is None else f"<NoDataValue>{s.nodata!r}</NoDataValue>"
        kind = "ComplexSource" if resample else "SimpleSource"
        method = f' resampling="{resample}"' if resample else ""
        src_nodata = (
            "" if s.nodata is None or not resample else f"<NODATA>{s.nodata!r}</NODATA>"
        )
        parts.append(
            f'<VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{i}">'
            f"<Description>{escape(name)}</Description>{nodata}"
            f"<{kind}{method}>"
            f'<SourceFilename relativeToVRT="0">{escape(os.fspath(s.path))}</SourceFilename>'
            f"<SourceBand>{idx}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{scols}" ySize="{srows}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{cols}" ySize="{rows}"/>'
            f"{src_nodata}</{kind}></VRTRasterBand>"
        )
    parts.append("</VRTDataset>")
    return "".join(parts)
