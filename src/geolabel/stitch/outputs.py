"""The class mask and probability COG sinks of finalize, and the predictions layer.

:class:`MaskSink` and :class:`ProbSink` receive blended cores (:class:`Block`) in
row-major order and write ``NAME_mask.tif`` / ``NAME_confidence.tif`` /
``NAME_probabilities.tif`` through :class:`~geolabel.io.raster.CogWriter`;
:func:`vectorize_outputs` turns the published mask and confidence into the
``predictions`` layer of ``NAME_predictions.gpkg``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from pyproj import Geod
from rasterio.windows import Window as RioWindow

from geolabel.grid import Tile, TileGrid
from geolabel.io.raster import CogWriter, mask_encoding
from geolabel.io.scene import Scene
from geolabel.io.vector import GpkgWriter
from geolabel.models.spec import ModelSpec
from geolabel.stitch.blend import Block
from geolabel.stitch.vectorize import vectorize_blocks

__all__ = ["MaskSink", "ProbSink", "vectorize_outputs"]

F32 = npt.NDArray[np.float32]
#: Geodesic areas of polygons in degrees (geographic scenes), in square metres.
_WGS84 = Geod(ellps="WGS84")


class MaskSink:
    """The class mask: argmax per pixel, in the fewest bits (``mask_encoding``)."""

    role = "mask"

    def __init__(
        self,
        path: Path,
        scene: Scene,
        spec: ModelSpec,
        tags: dict[str, str],
        *,
        compress: str,
    ) -> None:
        self.encoding = enc = mask_encoding(spec.num_classes)
        cmap = {c.index: (*c.rgb, 255) for c in spec.classes}
        cmap[enc.nodata] = (0, 0, 0, 0)
        self.w = CogWriter(
            path,
            scene.grid,
            count=1,
            dtype=enc.dtype,
            nodata=enc.nodata,
            nbits=enc.nbits,
            resampling="nearest",
            colormap=cmap,
            descriptions=["class"],
            tags={**tags, "CLASSES": ",".join(spec.class_names)},
            area_or_point=scene.area_or_point,
            compress=compress,
        )

    def write(self, block: Block) -> None:
        mask = block.classes.astype(self.encoding.dtype, copy=True)
        if not block.valid.all():
            mask[~block.valid] = self.encoding.nodata
        self.w.write(block.tile.core_window, mask)

    def close(self) -> Path:
        return self.w.close()

    def abort(self) -> None:
        self.w.abort()


class ProbSink:
    def __init__(
        self,
        path: Path,
        scene: Scene,
        spec: ModelSpec,
        tags: dict[str, str],
        *,
        role: str,
        compress: str,
    ) -> None:
        self.role = role
        count = spec.num_classes if role == "probabilities" else 1
        names = list(spec.class_names) if role == "probabilities" else ["confidence"]
        self.w = CogWriter(
            path,
            scene.grid,
            count=count,
            dtype="float32",
            nodata=float("nan"),
            resampling="average",
            descriptions=names,
            tags={**tags, "MEASURE": role, "SCALE": "0-1"},
            area_or_point=scene.area_or_point,
            compress=compress,
        )

    def write(self, block: Block) -> None:
        probs = block.probs
        if self.role == "probabilities":
            data = probs.astype(np.float32, copy=True)
        else:
            data = probs.max(axis=0, keepdims=True)
        if not block.valid.all():
            data[:, ~block.valid] = np.nan
        self.w.write(block.tile.core_window, data)

    def close(self) -> Path:
        return self.w.close()

    def abort(self) -> None:
        self.w.abort()


def vectorize_outputs(
    grid: TileGrid,
    mask_path: Path,
    conf_path: Path,
    out: Path,
    scene: Scene,
    spec: ModelSpec,
    run_id: str,
) -> Path:
    names = spec.class_names
    labels = spec.labels()
    geographic = scene.grid.is_geographic()
    # square metres: CRS units squared times the unit's metres squared (US feet);
    # pixel space (or an unknown unit) keeps the pixel's area in its own units
    px_m2 = grid.scene.pixel_area_m2()
    px_area = abs(grid.scene.transform.determinant) if px_m2 is None else px_m2
    writer = GpkgWriter(out, scene.grid.crs)
    try:
        with rasterio.open(mask_path) as m, rasterio.open(conf_path) as c:
            nodata = None if m.nodata is None else int(m.nodata)

            def read_block(tile: Tile) -> tuple[npt.NDArray[np.integer[Any]], F32]:
                w = tile.core_window
                rw = RioWindow(w.col_off, w.row_off, w.width, w.height)
                return m.read(1, window=rw), np.nan_to_num(c.read(1, window=rw))

            fid = 0
            for comps in vectorize_blocks(grid, read_block, nodata=nodata):
                recs, geoms = [], []
                for comp in comps:
                    fid += 1
                    geom = comp.geometry()
                    area = _geodesic_area(geom) if geographic else comp.pixels * px_area
                    recs.append(
                        {
                            "id": fid,
                            "class_id": comp.class_id,
                            "class_name": names[comp.class_id],
                            "label": labels[comp.class_id],
                            "score": round(comp.mean_probability, 6),
                            "mean_probability": round(comp.mean_probability, 6),
                            "pixels": comp.pixels,
                            "area_m2": round(area, 3),
                            "tile_id": comp.tile_id,
                            "model_id": spec.model_id,
                            "run_id": run_id,
                            "status": "suggested",
                        }
                    )
                    geoms.append(geom)
                writer.write("predictions", recs, geoms)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def _geodesic_area(geom: Any) -> float:
    return abs(_WGS84.geometry_area_perimeter(geom)[0])
