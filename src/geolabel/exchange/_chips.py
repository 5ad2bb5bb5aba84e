"""Training chips out: GeoTIFF image + mask pairs under the labels, and COCO JSON.

A scene is cut into ``chip_size`` squares on a grid anchored at its top-left pixel
(``stride`` apart; the last row and column are shifted inside so every chip has the
full size when the scene is large enough). A chip is written when at least
``min_labelled`` of its pixels carry a label. The folder it makes::

    OUT/images/SCENE_rRRRRRR_cCCCCCC.tif   the scene's bands, its dtype, CRS and grid
    OUT/masks/SCENE_rRRRRRR_cCCCCCC.tif    uint8 class index, 255 = unlabelled (nodata)
    OUT/chips.json                         classes, ignore index, every chip's window
    OUT/coco.json                          COCO instances (polygon labels), optional

Image and mask share a file name, CRS and transform, the layout torchgeo's
``RasterDataset`` (images) ``& RasterDataset(is_image=False)`` (masks) intersects, and
the one Raster Vision's ``SemanticSegmentationSlidingWindowGeoDataset`` reads chip by
chip. Masks are burnt as :func:`geolabel.labels.rasterize_labels` burns them for
``geolabel train``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely

from geolabel.errors import ConfigError, OutputExistsError
from geolabel.exchange._coco import CocoWriter
from geolabel.grid import SceneGrid, Window
from geolabel.io.scene import Scene
from geolabel.labels import IGNORE_INDEX, class_indexes, rasterize_labels

__all__ = ["TrainingExport", "chip_windows", "export_training"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainingExport:
    """What :func:`export_training` wrote.

    Attributes:
        out: the output folder.
        chips: number of image/mask pairs.
        labelled_pixels: labelled mask pixels over all chips.
        annotations: COCO annotations written (0 without COCO).
        skipped_points: point labels left out of COCO (no extent).
        coco: path of ``coco.json`` (``None`` when not asked for).
    """

    out: Path
    chips: int
    labelled_pixels: int
    annotations: int
    skipped_points: int
    coco: Path | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "out": str(self.out),
            "chips": self.chips,
            "labelled_pixels": self.labelled_pixels,
            "annotations": self.annotations,
            "skipped_points": self.skipped_points,
            "coco": None if self.coco is None else str(self.coco),
        }


def _starts(size: int, chip: int, stride: int) -> list[int]:
    if size <= chip:
        return [0]
    starts = list(range(0, size - chip + 1, stride))
    if starts[-1] != size - chip:
        starts.append(size - chip)
    return starts


def chip_windows(grid: SceneGrid, chip_size: int, stride: int) -> Iterator[Window]:
    """Chip windows over ``grid``, row-major; ``min(chip_size, side)`` pixels a side.

    Raises:
        ConfigError: ``chip_size`` or ``stride`` below 1.
    """
    if chip_size < 1 or stride < 1:
        raise ConfigError(
            f"chip size and stride must be >= 1 pixel, got {chip_size!r} and {stride!r}"
        )
    h, w = min(chip_size, grid.height), min(chip_size, grid.width)
    for r in _starts(grid.height, chip_size, stride):
        for c in _starts(grid.width, chip_size, stride):
            yield Window(r, c, h, w)


def _chip_box(grid: SceneGrid, win: Window) -> shapely.Polygon:
    t = grid.window_transform(win)
    (x0, y0), (x1, y1) = t @ (0, 0), t @ (win.width, win.height)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _write_tif(path: Path, data: np.ndarray, profile: dict[str, Any]) -> None:
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _scene_labels(
    scene: Scene,
    labels: gpd.GeoDataFrame,
    *,
    classes: Sequence[str],
    lookup: dict[str, int],
    class_field: str,
    source: str,
) -> gpd.GeoDataFrame:
    """The labelled features in the scene's CRS with their class index (``_cls``)."""
    gdf = labels[labels.geometry.notna() & ~labels.geometry.is_empty]
    if (gdf.crs is None) != (scene.grid.crs is None):
        raise ConfigError(f"{source}: labels CRS {gdf.crs} vs {scene.path} CRS")
    if gdf.crs is not None and not gdf.crs.equals(scene.grid.crs):
        gdf = gdf.to_crs(scene.grid.crs)
    idx = class_indexes(
        gdf,
        num_classes=len(classes),
        class_field=class_field,
        lookup=lookup,
        source=source,
    )
    gdf = gdf.assign(_cls=idx)
    return gdf[idx >= 0]


def export_training(
    scenes: Sequence[Scene],
    labels: gpd.GeoDataFrame,
    out: str | Path,
    *,
    classes: Sequence[str],
    lookup: dict[str, int],
    chip_size: int = 256,
    stride: int | None = None,
    min_labelled: int = 1,
    class_field: str = "label",
    coco: bool = True,
    overwrite: bool = False,
    source: str = "labels",
) -> TrainingExport:
    """Write image/mask chips (and COCO) for the labelled parts of ``scenes``.

    Args:
        scenes: scenes opened with the bands to export, in model order.
        labels: label features (polygons, points) with a class field, any CRS.
        out: output folder (written as ``OUT.partial`` and renamed when complete).
        classes: class names by index (mask value, COCO category ``index + 1``).
        lookup: lower-case class name or label -> index (:func:`class_lookup`).
        chip_size: chip side in pixels.
        stride: pixels between chip origins (default: ``chip_size``, no overlap).
        min_labelled: labelled pixels a chip needs to be written.
        class_field: the labels' class attribute (names or integer codes).
        coco: also write ``coco.json`` (polygon labels as instances).
        overwrite: replace an existing ``out``.
        source: the labels' name in error messages.

    Returns:
        Counts and paths.

    Raises:
        ConfigError: bad sizes, unknown classes, labels without a CRS on a
            georeferenced scene, or no chip with labels.
        OutputExistsError: ``out`` exists and ``overwrite`` is off.

    .. versionadded:: 0.1
    """
    out = Path(out)
    stride = chip_size if stride is None else stride
    if min_labelled < 1:
        raise ConfigError(f"min labelled pixels must be >= 1, got {min_labelled!r}")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: exists; pass --overwrite to replace it")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    writer = CocoWriter(classes) if coco else None
    index: list[dict[str, Any]] = []
    total = 0
    try:
        for scene in scenes:
            feats = _scene_labels(
                scene,
                labels,
                classes=classes,
                lookup=lookup,
                class_field=class_field,
                source=source,
            )
            if feats.empty:
                continue
            for entry in _scene_chips(
                scene,
                feats,
                tmp,
                classes=classes,
                chip_size=chip_size,
                stride=stride,
                min_labelled=min_labelled,
                writer=writer,
            ):
                index.append(entry)
                total += entry["labelled_pixels"]
        if not index:
            raise ConfigError(
                f"{source}: no labelled pixels on the {len(scenes)} scene(s); "
                "check the labels' CRS and class field"
            )
        doc = {
            "classes": list(classes),
            "ignore_index": IGNORE_INDEX,
            "chip_size": chip_size,
            "stride": stride,
            "chips": index,
        }
        (tmp / "chips.json").write_text(json.dumps(doc, indent=1))
        coco_path = None
        if writer is not None:
            coco_path = out / "coco.json"
            (tmp / "coco.json").write_text(json.dumps(writer.document()))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %d chips to %s", len(index), out)
    return TrainingExport(
        out=out,
        chips=len(index),
        labelled_pixels=total,
        annotations=0 if writer is None else len(writer.annotations),
        skipped_points=0 if writer is None else writer.skipped_points,
        coco=coco_path,
    )


def _scene_chips(
    scene: Scene,
    feats: gpd.GeoDataFrame,
    tmp: Path,
    *,
    classes: Sequence[str],
    chip_size: int,
    stride: int,
    min_labelled: int,
    writer: CocoWriter | None,
) -> Iterator[dict[str, Any]]:
    """Write the chips of one scene; yield their index entries."""
    grid = scene.grid
    tree = shapely.STRtree(feats.geometry.to_numpy())
    nodata = scene.nodata
    with scene.open() as ds:
        for win in chip_windows(grid, chip_size, stride):
            box = _chip_box(grid, win)
            hits = tree.query(box, predicate="intersects")
            if len(hits) == 0:
                continue
            sub = feats.iloc[np.sort(hits)]
            cgrid = grid.crop(win)
            mask = rasterize_labels(
                sub,
                cgrid,
                num_classes=len(classes),
                class_field="_cls",
                source=str(scene.path),
            )
            read = scene.read(win, dataset=ds)
            mask[~read.valid] = IGNORE_INDEX
            labelled = int((mask != IGNORE_INDEX).sum())
            if labelled < min_labelled:
                continue
            name = f"{scene.name}_r{win.row_off:06d}_c{win.col_off:06d}.tif"
            data = read.data.astype(scene.dtype)
            if nodata is not None and not read.valid.all():
                data[:, ~read.valid] = nodata
            base = {
                "driver": "GTiff",
                "width": win.width,
                "height": win.height,
                "crs": grid.crs,
                "transform": cgrid.transform,
                "compress": "deflate",
            }
            _write_tif(
                tmp / "images" / name,
                data,
                base | {"count": data.shape[0], "dtype": scene.dtype, "nodata": nodata},
            )
            _write_tif(
                tmp / "masks" / name,
                mask[None],
                base | {"count": 1, "dtype": "uint8", "nodata": IGNORE_INDEX},
            )
            counts = np.bincount(mask[mask != IGNORE_INDEX], minlength=len(classes))
            entry: dict[str, Any] = {
                "image": f"images/{name}",
                "mask": f"masks/{name}",
                "scene": str(scene.path),
                "window": [win.row_off, win.col_off, win.height, win.width],
                "bounds": list(box.bounds),
                "labelled_pixels": labelled,
                "class_pixels": {classes[i]: int(n) for i, n in enumerate(counts) if n},
            }
            if writer is not None:
                writer.add_image(entry, cgrid, box, sub)
            yield entry
