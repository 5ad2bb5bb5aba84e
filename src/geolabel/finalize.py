"""Finalize a scene: blend the run store core by core into COGs, then vectorise.

Every output is written under a partial name and renamed when complete, so a run
killed during finalize leaves no half-written file; finalizing again from the same
store gives the same bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.windows import Window as RioWindow

from geolabel.config import RunConfig
from geolabel.grid import Tile, TileGrid
from geolabel.io.raster import CogWriter, mask_encoding
from geolabel.io.scene import Scene
from geolabel.io.store import RunStore
from geolabel.io.vector import GpkgWriter
from geolabel.models.spec import ModelSpec
from geolabel.stitch._halo import halo_size
from geolabel.stitch.blend import HaloCache, class_argmax, gather_core, normalise
from geolabel.stitch.vectorize import vectorize_blocks

__all__ = ["BlockSink", "finalize_scene", "iter_blended"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


class BlockSink(Protocol):
    """Receives blended probabilities core by core and writes one output."""

    role: str

    def write(self, tile: Tile, probs: F32, valid: npt.NDArray[np.bool_]) -> None:
        """Consume ``(C, rows, cols)`` probabilities over ``tile.core_window``."""
        ...

    def close(self) -> Path:
        """Publish the output; returns its path."""
        ...

    def abort(self) -> None:
        """Drop partial files."""
        ...


#: Bytes of halo records kept between tiles while finalizing (see iter_blended).
HALO_CACHE_BYTES = 128 * 1024**2


def halo_cache_entries(grid: TileGrid, channels: int) -> int:
    """How many halo records :func:`iter_blended` keeps: bounded in bytes, not by width.

    Row-major, a core needs the records of the row above, so keeping two rows of them
    (``2 * cols + 4``) reads each record once; but that grows with the scene's width
    (2 GiB for 1024² tiles on a 100 k-pixel-wide scene). Past HALO_CACHE_BYTES (at
    least 16 records) the upper row's records are read again instead: about 3 more
    chunk reads per tile on wide scenes, with memory that does not depend on the scene.
    """
    record = (channels + 1) * max(halo_size(grid), 1) * 4
    return min(2 * grid.shape[1] + 4, max(16, HALO_CACHE_BYTES // record))


def iter_blended(grid: TileGrid, store: RunStore) -> Any:
    """Yield ``(tile, probs (C, rows, cols), valid)`` for every core, row-major."""
    cache = HaloCache(store.read_halo, size=halo_cache_entries(grid, store.channels))
    for tile in grid:
        total = gather_core(grid, tile, store.read_core(tile.core_window), cache)
        probs, valid = normalise(total)
        yield tile, probs, valid


class _MaskSink:
    """The class mask: argmax per pixel, in the fewest bits (``mask_encoding``)."""

    role = "mask"

    def __init__(
        self, path: Path, scene: Scene, spec: ModelSpec, tags: dict[str, str]
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
        )

    def write(self, tile: Tile, probs: F32, valid: npt.NDArray[np.bool_]) -> None:
        mask = class_argmax(probs).astype(self.encoding.dtype, copy=False)
        mask[~valid] = self.encoding.nodata
        self.w.write(tile.core_window, mask)

    def close(self) -> Path:
        return self.w.close()

    def abort(self) -> None:
        self.w.abort()


class _ProbSink:
    def __init__(
        self,
        path: Path,
        scene: Scene,
        spec: ModelSpec,
        tags: dict[str, str],
        *,
        role: str,
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
        )

    def write(self, tile: Tile, probs: F32, valid: npt.NDArray[np.bool_]) -> None:
        data = (
            probs if self.role == "probabilities" else probs.max(axis=0, keepdims=True)
        )
        data = data.astype(np.float32, copy=True)
        data[:, ~valid] = np.nan
        self.w.write(tile.core_window, data)

    def close(self) -> Path:
        return self.w.close()

    def abort(self) -> None:
        self.w.abort()


def _vectorize(
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
    px_area = abs(grid.scene.transform.a * grid.scene.transform.e)
    geographic = False
    if scene.grid.crs is not None:
        geographic = rasterio.crs.CRS.from_user_input(scene.grid.crs).is_geographic
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
    from pyproj import Geod

    return abs(Geod(ellps="WGS84").geometry_area_perimeter(geom)[0])


def finalize_scene(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    store: RunStore,
    sdir: Path,
    config: RunConfig,
    *,
    run_id: str,
) -> dict[str, str]:
    """Write the scene's outputs from a complete run store; returns ``role -> path``."""
    tags = {"MODEL_ID": spec.model_id, "RUN_ID": run_id, "SOURCE": scene.path.name}
    name = scene.name
    sinks: list[BlockSink] = [
        _MaskSink(sdir / f"{name}_mask.tif", scene, spec, tags),
        _ProbSink(
            sdir / f"{name}_confidence.tif", scene, spec, tags, role="confidence"
        ),
    ]
    if config.probabilities:
        sinks.append(
            _ProbSink(
                sdir / f"{name}_probabilities.tif",
                scene,
                spec,
                tags,
                role="probabilities",
            )
        )
    from geolabel.uncertainty.sinks import extra_sinks

    sinks.extend(extra_sinks(scene, grid, spec, sdir, config, tags))
    outputs: dict[str, str] = {}
    try:
        for tile, stacked, valid in iter_blended(grid, store):
            # channels past the classes: model-based uncertainty (models/ensemble.py)
            probs, extra = stacked[: spec.num_classes], stacked[spec.num_classes :]
            for sink in sinks:
                if getattr(sink, "takes_extra", False):
                    sink.write(tile, probs, valid, extra)  # type: ignore[call-arg]
                else:
                    sink.write(tile, probs, valid)
        for sink in sinks:
            outputs[sink.role] = str(sink.close())
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    if config.vectors:
        path = _vectorize(
            grid,
            Path(outputs["mask"]),
            Path(outputs["confidence"]),
            sdir / f"{name}_predictions.gpkg",
            scene,
            spec,
            run_id,
        )
        outputs["vectors"] = str(path)
    from geolabel.qgis import (
        style_scene_outputs,
    )  # QGIS sidecars, category names, layer_styles

    outputs.update(style_scene_outputs(outputs, spec))
    return outputs
