"""Finalize a scene: blend the run store core by core into COGs, then vectorise.

Every output is written under a partial name and renamed when complete, so a run
killed during finalize leaves no half-written file; finalizing again from the same
store gives the same bytes.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.windows import Window as RioWindow

from geolabel.config import RunConfig
from geolabel.grid import Tile, TileGrid
from geolabel.io.raster import RAW_OVERVIEW_TEMP, CogWriter, mask_encoding
from geolabel.io.scene import Scene
from geolabel.io.stages import stage_depth, stage_threads
from geolabel.io.store import RunStore
from geolabel.io.vector import GpkgWriter
from geolabel.models.spec import ModelSpec
from geolabel.qgis import style_scene_outputs
from geolabel.stitch._halo import halo_size
from geolabel.stitch.blend import (
    Block,
    HaloCache,
    class_argmax,
    gather_core,
    normalise,
)
from geolabel.stitch.vectorize import vectorize_blocks
from geolabel.uncertainty.sinks import extra_sinks

__all__ = ["BlockSink", "blend_block", "finalize_scene", "iter_blended"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


class BlockSink(Protocol):
    """Receives blended cores in row-major order and writes one output.

    A sink whose ``write`` needs another sink's result for the same block (see
    ``uncertainty.sinks.TileLayerSink``) comes after it in finalize's list.
    """

    role: str

    def write(self, block: Block) -> None:
        """Consume one blended core."""
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


def blend_block(
    grid: TileGrid, tile: Tile, store: RunStore, num_classes: int, halo_of: HaloCache
) -> Block:
    """One core's :class:`Block`: its own sums plus its neighbours' halo pieces,
    normalised, with the argmax every sink shares."""
    total = gather_core(grid, tile, store.read_core(tile.core_window), halo_of)
    stacked, valid = normalise(total)
    probs = stacked[:num_classes]
    return Block(tile, probs, valid, class_argmax(probs), stacked[num_classes:])


def iter_blended(grid: TileGrid, store: RunStore, num_classes: int) -> Iterator[Block]:
    """Yield every core's :class:`Block`, row-major.

    The next cores are read and blended in ``stage_threads()`` threads (at most
    ``stage_depth()`` ahead, so memory stays bounded) while the caller writes this
    one; each block is computed the same way whatever the threads, so the bytes do
    not depend on them.
    """
    cache = HaloCache(store.read_halo, size=halo_cache_entries(grid, store.channels))
    tiles = iter(grid)
    with ThreadPoolExecutor(
        stage_threads(), thread_name_prefix="geolabel-blend"
    ) as pool:
        ahead: deque[Future[Block]] = deque()

        def submit(n: int) -> None:
            for tile in itertools.islice(tiles, n):
                ahead.append(
                    pool.submit(blend_block, grid, tile, store, num_classes, cache)
                )

        submit(stage_depth())
        try:
            while ahead:
                block = ahead.popleft().result()
                submit(1)
                yield block
        finally:
            for pending in ahead:
                pending.cancel()


class _MaskSink:
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


class _ProbSink:
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


def _publish(sinks: list[BlockSink]) -> list[Path]:
    """Close every sink, side by side: their COG copies (compression, overviews) are
    independent and each opens its own files (results in sink order)."""
    with ThreadPoolExecutor(len(sinks), thread_name_prefix="geolabel-publish") as pool:
        return list(pool.map(lambda s: s.close(), sinks))


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
    z = config.compress
    sinks: list[BlockSink] = [
        _MaskSink(sdir / f"{name}_mask.tif", scene, spec, tags, compress=z),
        _ProbSink(
            sdir / f"{name}_confidence.tif",
            scene,
            spec,
            tags,
            role="confidence",
            compress=z,
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
                compress=z,
            )
        )

    sinks.extend(extra_sinks(scene, grid, spec, sdir, config, tags))
    outputs: dict[str, str] = {}
    try:
        # Sinks write on this thread, where their files were opened: writing GDAL
        # datasets from worker threads (while this one read the store) lost a core
        # of one output in about one finalize in 30.
        for block in iter_blended(grid, store, spec.num_classes):
            for sink in sinks:
                sink.write(block)
        # the GDAL option is process-wide, so it is set here, not in each thread
        raw = all(getattr(getattr(s, "w", None), "raw_temp", True) for s in sinks)
        with rasterio.Env(**(RAW_OVERVIEW_TEMP if raw else {})):
            paths = _publish(sinks)
        for sink, path in zip(sinks, paths, strict=True):
            outputs[sink.role] = str(path)
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

    outputs.update(style_scene_outputs(outputs, spec))
    return outputs
