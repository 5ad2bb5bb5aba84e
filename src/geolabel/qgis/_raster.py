"""Raster styling: class names for GDAL (PAM ``.aux.xml``) and ``.qml`` sidecars for QGIS.

QGIS loads ``NAME.qml`` beside ``NAME.tif`` as the layer's default style, so a mask
opens paletted with class names and a probability raster with a colour ramp over 0–1.
GDAL reads the class names from ``NAME.tif.aux.xml`` (``CategoryNames``), which
rasterio cannot write, so the PAM file is written here. Both are written atomically.
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from geolabel.errors import GeolabelError
from geolabel.qgis._qml import (
    Category,
    multiband_renderer,
    paletted_renderer,
    pseudocolor_renderer,
    qml_document,
)

__all__ = [
    "BACKGROUND_NAMES",
    "is_background",
    "mask_categories",
    "raster_style",
    "scene_style",
    "value_range",
    "write_category_names",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

#: class names styled as background: transparent in masks, not drawn as polygons.
BACKGROUND_NAMES = frozenset({"background", "bg", "_background_"})

#: the largest nodata value given a ``"nodata"`` category name (8-bit masks and less).
_MAX_NAMED_NODATA = 255


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and a rename; returns ``path``."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def mask_categories(path: Path, names: Sequence[str]) -> list[Category]:
    """Palette entries of a class mask: its colour table, labelled with ``names``.

    Only class values are returned; the nodata value is left out (not drawn), and a
    class named ``background`` is transparent, so the image shows through it.

    Raises:
        GeolabelError: the file has no colour table or fewer entries than classes.
    """
    with rasterio.open(path) as ds:
        try:
            cmap = ds.colormap(1)
        except ValueError as err:
            raise GeolabelError(f"{path}: class mask has no colour table") from err
        nodata = ds.nodata
    cats = []
    for value, name in enumerate(names):
        if value not in cmap:
            raise GeolabelError(
                f"{path}: colour table has no entry for class {value} ({name!r})"
            )
        if nodata is not None and value == int(nodata):
            continue
        r, g, b, _ = cmap[value]
        cats.append(Category(value, name, (r, g, b, 0 if is_background(name) else 255)))
    return cats


def is_background(name: str) -> bool:
    """Whether a class is the background class that styles leave transparent / hidden."""
    return name.strip().lower() in BACKGROUND_NAMES


def write_category_names(path: Path, names: Sequence[str]) -> Path:
    """Write GDAL category names for band 1 of ``path`` into ``path.aux.xml``.

    Entry ``i`` names value ``i``. Entries after the classes up to the nodata value are
    blank and the nodata entry is ``"nodata"`` when nodata is below 256 (masks of 1 to
    8 bits: nodata 1, 3, 15 or 255); a 16-bit mask (nodata 65535) lists its classes
    only, not 65 536 entries. An existing PAM file is replaced (the COG writer leaves
    none).

    Returns:
        The ``.aux.xml`` path.
    """
    with rasterio.open(path) as ds:
        nodata = ds.nodata
        desc = ds.descriptions[0] or "class"
    if nodata is not None and int(nodata) > _MAX_NAMED_NODATA:
        nodata = None
    n = max(len(names), int(nodata) + 1 if nodata is not None else 0)
    entries = [names[i] if i < len(names) else "" for i in range(n)]
    if nodata is not None:
        entries[int(nodata)] = "nodata"
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    ET.SubElement(band, "Description").text = desc
    cats = ET.SubElement(band, "CategoryNames")
    for e in entries:
        ET.SubElement(cats, "Category").text = e
    ET.indent(root)
    aux = path.with_name(path.name + ".aux.xml")
    return write_text_atomic(aux, ET.tostring(root, encoding="unicode") + "\n")


def value_range(path: Path, band: int = 1) -> tuple[float, float]:
    """The value range to colour a continuous raster over.

    Taken from the file's ``SCALE`` tag (``"0-1"``, as finalize writes it) when it has
    one, else the min/max of a decimated read (the smallest overview when there is one).
    """
    with rasterio.open(path) as ds:
        scale = ds.tags().get("SCALE") or ds.tags(band).get("SCALE")
        if scale:
            lo, sep, hi = scale.partition("-")
            try:
                vmin, vmax = float(lo), float(hi)
                if sep and vmax > vmin:
                    return vmin, vmax
            except ValueError:
                logger.debug("%s: SCALE tag %r is not 'min-max'", path, scale)
        arr = sample_band(ds, band, 512)
    vals = arr.compressed()
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    vmin, vmax = float(vals.min()), float(vals.max())
    if not vmax > vmin:
        vmax = vmin + 1.0
    return vmin, vmax


#: ramp per raster role; roles not listed get ``viridis`` (``uncert*`` gets ``magma``).
ROLE_RAMPS = {"confidence": "rdylgn", "probabilities": "viridis"}


def raster_style(
    path: Path, role: str, *, class_names: Sequence[str] = ()
) -> list[ET.Element]:
    """The renderer elements for an output raster of ``role``.

    ``mask`` (and any uint8 / uint16 raster with a colour table, whatever its NBITS) is
    paletted with class names; float rasters get a singleband pseudocolor ramp over
    :func:`value_range`.
    """
    with rasterio.open(path) as ds:
        has_palette = ds.dtypes[0] in ("uint8", "uint16") and _has_colormap(ds)
    if role == "mask" or has_palette:
        return paletted_renderer(mask_categories(path, class_names))
    ramp = ROLE_RAMPS.get(role, "magma" if "uncert" in role else "viridis")
    vmin, vmax = value_range(path)
    return pseudocolor_renderer(ramp, vmin, vmax)


def _has_colormap(ds: rasterio.io.DatasetReader) -> bool:
    try:
        ds.colormap(1)
    except ValueError:
        return False
    return True


def write_raster_qml(path: Path, role: str, *, class_names: Sequence[str] = ()) -> Path:
    """Write the ``.qml`` sidecar QGIS loads as ``path``'s default style."""
    qml = qml_document(raster_style(path, role, class_names=class_names))
    return write_text_atomic(path.with_suffix(".qml"), qml)


def scene_style(
    path: str, bands: Sequence[int] | None = None, band_names: Sequence[str | None] = ()
) -> list[ET.Element]:
    """True-colour (red/green/blue by band name, else the first three) stretched 2–98 %.

    ``bands`` are the 1-based dataset bands the run used; a one-band scene is shown grey
    through a pseudocolor ramp instead.
    """
    with rasterio.open(path) as ds:
        names = [d.lower() if d else "" for d in (band_names or ds.descriptions)]
        count = ds.count
        if count < 3:
            lo, hi = _percentiles(ds, 1)
            return pseudocolor_renderer("viridis", lo, hi)
        pick = [
            names.index(want) + 1 if want in names else 0
            for want in ("red", "green", "blue")
        ]
        if 0 in pick:
            pool = list(bands or range(1, count + 1))[:3]
            pick = pool if len(pool) == 3 else [1, 2, 3]
        ranges = [_percentiles(ds, b) for b in pick]
    return multiband_renderer((pick[0], pick[1], pick[2]), ranges)


def sample_band(
    ds: rasterio.io.DatasetReader, band: int, size: int
) -> np.ma.MaskedArray:
    """Pixels of ``band`` for statistics, at a cost that does not grow with the scene.

    Small rasters and rasters with overviews are read decimated to about ``size`` pixels
    a side (overviews make that cheap); larger ones without overviews are sampled as an
    8 x 8 grid of 64-pixel windows, so the I/O stays bounded (each window decodes one or
    a few of the file's blocks: 64 windows, not 256, keep that under 0.3 s per band).
    """
    if max(ds.height, ds.width) <= 2 * size or ds.overviews(band):
        f = max(1, max(ds.height, ds.width) // size)
        shape = (max(1, ds.height // f), max(1, ds.width // f))
        out: np.ma.MaskedArray = ds.read(
            band, out_shape=shape, resampling=Resampling.nearest, masked=True
        ).astype("float64")
        return out
    n, w = 8, 64
    rows = np.linspace(0, ds.height - w, n).astype(int)
    cols = np.linspace(0, ds.width - w, n).astype(int)
    parts = [
        ds.read(band, window=Window(int(c), int(r), w, w), masked=True).astype(
            "float64"
        )
        for r in rows
        for c in cols
    ]
    stacked: np.ma.MaskedArray = np.ma.concatenate(  # type: ignore[no-untyped-call]
        [p.ravel() for p in parts]
    )
    return stacked


def _percentiles(ds: rasterio.io.DatasetReader, band: int) -> tuple[float, float]:
    arr = sample_band(ds, band, 1024)
    vals = arr.compressed()
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(vals, [2, 98]))
    if not hi > lo or math.isnan(hi - lo):
        hi = lo + 1.0
    return lo, hi
