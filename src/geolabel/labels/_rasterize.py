"""Import label vectors and burn them onto a scene grid (everything else = ignore).

Polygons burn the pixels whose centre lies inside them (``all_touched=False``); points
burn the pixel that contains them, optionally grown to a ``(2N+1) x (2N+1)`` pixel
square. A pixel claimed by two different classes is set to the ignore index, so a
conflicting label never reaches the loss.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
from rasterio.features import rasterize

from geolabel.errors import ConfigError, CRSMismatchError
from geolabel.grid import SceneGrid

__all__ = [
    "IGNORE_INDEX",
    "class_indexes",
    "class_lookup",
    "merge_labels",
    "rasterize_labels",
    "read_labels",
]

logger = logging.getLogger(__name__)

#: Label value of pixels without a label (skipped by the loss and the metrics).
IGNORE_INDEX = 255

_POINTS = ("Point", "MultiPoint")


def read_labels(path: str | Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read one layer of a vector file (GeoPackage, GeoJSON, FlatGeobuf, ...).

    Args:
        path: the vector file.
        layer: layer name (default: the only layer with geometries).

    Returns:
        The features with their attributes, in the file's CRS.

    Raises:
        ConfigError: the file or layer does not exist or cannot be read, or no
            layer is named and the file has several.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: label file not found")
    try:
        listed = pyogrio.list_layers(p)
        layers = [str(name) for name, _ in listed]
        if layer is not None and layer not in layers:
            raise ConfigError(f"{p}: no layer {layer!r}; layers are {layers}")
        # tables without geometry (layer_styles, attributes) are never labels
        spatial = [str(n) for n, g in listed if g is not None] or layers
        if layer is None and len(spatial) > 1:
            raise ConfigError(
                f"{p}: has {len(spatial)} layers {spatial}; name one as {p}:LAYER"
            )
        if layer is None and spatial:
            layer = spatial[0]
        gdf: gpd.GeoDataFrame = pyogrio.read_dataframe(p, layer=layer)
    except pyogrio.errors.DataSourceError as err:
        raise ConfigError(f"{p}: cannot read labels: {err}") from err
    return gdf


def class_lookup(
    class_names: Sequence[str], labels: Sequence[str | None] = ()
) -> dict[str, int]:
    """Map class names (and project labels) to model class indexes.

    Args:
        class_names: model class names by output index.
        labels: project label per class (a spec's ``labels()``), also accepted.

    Returns:
        ``name -> index``, case-insensitive keys (lower case).
    """
    out = {n.lower(): i for i, n in enumerate(class_names)}
    for i, lab in enumerate(labels):
        if lab is not None:
            out.setdefault(lab.lower(), i)
    return out


def filled(features: Any, field: str) -> npt.NDArray[np.bool_]:
    """Per feature: ``field`` exists and holds a value (not null, not blank)."""
    if field not in features.columns:
        return np.zeros(len(features), dtype=bool)
    values = features[field]
    out: npt.NDArray[np.bool_] = (
        values.notna() & (values.astype(str).str.strip() != "")
    ).to_numpy(dtype=bool)
    return out


def _class_index(
    values: Any,
    *,
    lookup: Mapping[str, int] | None,
    offset: int,
    num_classes: int,
    source: str,
    field: str,
) -> npt.NDArray[np.int64]:
    """Model class index per feature from a class field (names or integer codes)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iuf":
        if arr.dtype.kind == "f" and not np.all(
            np.isfinite(arr) & (arr == np.round(arr))
        ):
            raise ConfigError(
                f"{source}: field {field!r} holds non-integer class codes"
            )
        idx = arr.astype(np.int64) + offset
        bad = sorted({int(v) for v in arr[(idx < 0) | (idx >= num_classes)]})
        if bad:
            raise ConfigError(
                f"{source}: class codes {bad[:10]} in {field!r} fall outside 0..{num_classes - 1}"
                f" after adding offset {offset}; pass the right class offset"
            )
        return idx
    if lookup is None:
        raise ConfigError(
            f"{source}: field {field!r} holds names; a class list is needed"
        )
    names = [str(v).lower() for v in arr]
    unknown = sorted({n for n in names if n not in lookup})
    if unknown:
        raise ConfigError(
            f"{source}: unknown class names {unknown[:10]} in {field!r}; "
            f"known: {sorted(lookup)}"
        )
    return np.array([lookup[n] for n in names], dtype=np.int64)


def class_indexes(
    features: gpd.GeoDataFrame,
    *,
    num_classes: int,
    class_field: str = "label",
    lookup: Mapping[str, int] | None = None,
    class_offset: int = 0,
    source: str = "labels",
) -> npt.NDArray[np.int64]:
    """Model class index of each labelled feature (rows with an empty class field: -1).

    Args:
        features: features with a class field (names or integer codes).
        num_classes: number of model classes.
        class_field: the class attribute.
        lookup: lower-case name -> model index (see :func:`class_lookup`).
        class_offset: added to integer codes.
        source: name used in error messages.

    Raises:
        ConfigError: no such field, unknown names or codes out of range.

    .. versionadded:: 0.1
    """
    out = np.full(len(features), -1, dtype=np.int64)
    if class_field not in features.columns:
        raise ConfigError(
            f"{source}: no class field {class_field!r}; fields are "
            f"{[c for c in features.columns if c != features.geometry.name]}"
        )
    ok = filled(features, class_field)
    if ok.any():
        out[ok] = _class_index(
            features[class_field].to_numpy()[ok],
            lookup=lookup,
            offset=class_offset,
            num_classes=num_classes,
            source=source,
            field=class_field,
        )
    return out


def _point_cells(geoms: Any, grid: SceneGrid, buffer: int) -> list[tuple[int, int]]:
    """``(row, col)`` of the pixels that points fall in (points outside are dropped)."""
    cells = []
    inv = ~grid.transform
    for geom in geoms:
        parts = getattr(geom, "geoms", [geom])
        for pt in parts:
            col, row = inv @ (pt.x, pt.y)
            r, c = int(np.floor(row)), int(np.floor(col))
            for dr in range(-buffer, buffer + 1):
                for dc in range(-buffer, buffer + 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < grid.height and 0 <= cc < grid.width:
                        cells.append((rr, cc))
    return cells


def rasterize_labels(
    features: gpd.GeoDataFrame,
    grid: SceneGrid,
    *,
    num_classes: int,
    class_field: str = "label",
    lookup: Mapping[str, int] | None = None,
    class_offset: int = 0,
    point_buffer: int = 0,
    source: str = "labels",
) -> npt.NDArray[np.uint8]:
    """Burn labelled features onto ``grid``; unlabelled pixels get :data:`IGNORE_INDEX`.

    Args:
        features: polygons and/or points with a class field, in any CRS (reprojected to
            the grid's CRS when both are known).
        grid: the scene grid (or a crop of it) to burn onto.
        num_classes: number of model classes (indexes ``0..num_classes-1``).
        class_field: attribute holding the class, as a name (looked up in ``lookup``)
            or an integer code (``code + class_offset`` is the model index).
        lookup: lower-case name -> model index (see :func:`class_lookup`).
        class_offset: added to integer codes (``-1`` for 1-based codes).
        point_buffer: grow each point to a square of ``2N+1`` pixels a side.
        source: name used in error messages (file and layer).

    Returns:
        ``(rows, cols)`` uint8 array of model class indexes, 255 where unlabelled or
        where two classes claim the pixel.

    Raises:
        ConfigError: missing class field, unknown class names or codes out of range.
        CRSMismatchError: the features have a CRS and the grid none (or vice versa).

    .. versionadded:: 0.1
    """
    if num_classes > IGNORE_INDEX:
        raise ConfigError(f"{source}: at most {IGNORE_INDEX} classes can be rasterised")
    if point_buffer < 0:
        raise ConfigError(f"point buffer must be >= 0 pixels, got {point_buffer!r}")
    out = np.full(grid.shape, IGNORE_INDEX, dtype=np.uint8)
    gdf = features[features.geometry.notna() & ~features.geometry.is_empty]
    if gdf.empty:
        return out
    if class_field not in gdf.columns:
        raise ConfigError(
            f"{source}: no class field {class_field!r}; fields are "
            f"{[c for c in gdf.columns if c != gdf.geometry.name]}"
        )
    gdf = gdf[filled(gdf, class_field)]  # not labelled yet (an open queue): nothing
    if gdf.empty:
        return out
    if (gdf.crs is None) != (grid.crs is None):
        raise CRSMismatchError(
            f"{source}: labels CRS {gdf.crs} vs scene CRS {grid.crs}"
        )
    if gdf.crs is not None and not gdf.crs.equals(grid.crs):
        gdf = gdf.to_crs(grid.crs)
    idx = _class_index(
        gdf[class_field].to_numpy(),
        lookup=lookup,
        offset=class_offset,
        num_classes=num_classes,
        source=source,
        field=class_field,
    )
    is_point = gdf.geometry.geom_type.isin(_POINTS).to_numpy()
    count = np.zeros(grid.shape, dtype=np.uint16)
    for k in np.unique(idx):
        sel = idx == k
        claimed = np.zeros(grid.shape, dtype=bool)
        polys = gdf.geometry[sel & ~is_point]
        if len(polys):
            claimed |= rasterize(
                ((g, 1) for g in polys),
                out_shape=grid.shape,
                transform=grid.transform,
                fill=0,
                all_touched=False,
                dtype="uint8",
            ).astype(bool)
        cells = _point_cells(gdf.geometry[sel & is_point], grid, point_buffer)
        if cells:
            rc = np.array(cells)
            claimed[rc[:, 0], rc[:, 1]] = True
        out[claimed] = k
        count += claimed
    conflicts = count > 1
    out[conflicts] = IGNORE_INDEX
    if conflicts.any():
        logger.warning(
            "%s: %d pixels claimed by two classes set to ignore",
            source,
            int(conflicts.sum()),
        )
    return out


def merge_labels(*layers: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Combine label rasters: labelled pixels add up; two classes on one pixel -> ignore.

    Raises:
        ConfigError: no layer or shapes differ.
    """
    if not layers:
        raise ConfigError("no label layers to merge")
    out = layers[0].copy()
    for lab in layers[1:]:
        if lab.shape != out.shape:
            raise ConfigError(
                f"label rasters differ in shape: {out.shape} vs {lab.shape}"
            )
        clash = (out != IGNORE_INDEX) & (lab != IGNORE_INDEX) & (out != lab)
        out = np.where(out == IGNORE_INDEX, lab, out)
        out[clash] = IGNORE_INDEX
    return out
