"""Finalize a scene: blend the run store core by core into COGs, then vectorise.

Every output is written under a partial name and renamed when complete, so a run
killed during finalize leaves no half-written file; finalizing again from the same
store gives the same bytes. In-process runs blend and write the cores while the tiles
run (:func:`open_stream`, :mod:`geolabel.stitch.stream`), so that finalize then only
publishes; the bytes are the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rasterio

from geolabel.config import RunConfig
from geolabel.grid import Tile, TileGrid
from geolabel.io.raster import RAW_OVERVIEW_TEMP
from geolabel.io.scene import Scene
from geolabel.io.store import RunStore
from geolabel.models.spec import ModelSpec
from geolabel.qgis import style_scene_outputs
from geolabel.stitch._halo import halo_size
from geolabel.stitch.blend import Block, HaloCache, blend_core
from geolabel.stitch.outputs import MaskSink, ProbSink, vectorize_outputs
from geolabel.stitch.stream import BlockSink, BlockStream, blend_ahead
from geolabel.uncertainty.sinks import extra_sinks

__all__ = [
    "BlockSink",
    "blend_block",
    "finalize_scene",
    "iter_blended",
    "open_sinks",
    "open_stream",
]

logger = logging.getLogger(__name__)


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
    """One core's :class:`Block` from the store (:func:`~geolabel.stitch.blend.blend_core`)."""
    return blend_core(
        grid, tile, store.read_core(tile.core_window), num_classes, halo_of
    )


def iter_blended(grid: TileGrid, store: RunStore, num_classes: int) -> Iterator[Block]:
    """Yield every core's :class:`Block`, row-major.

    The next cores are read and blended in ``stage_threads()`` threads (at most
    ``stage_depth()`` ahead, so memory stays bounded) while the caller writes this
    one; each block is computed the same way whatever the threads, so the bytes do
    not depend on them.
    """
    cache = HaloCache(store.read_halo, size=halo_cache_entries(grid, store.channels))
    yield from blend_ahead(
        grid, lambda tile: blend_block(grid, tile, store, num_classes, cache)
    )


def _publish(sinks: list[BlockSink]) -> list[Path]:
    """Close every sink, side by side: their COG copies (compression, overviews) are
    independent and each opens its own files (results in sink order)."""
    with ThreadPoolExecutor(len(sinks), thread_name_prefix="geolabel-publish") as pool:
        return list(pool.map(lambda s: s.close(), sinks))


def open_sinks(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    sdir: Path,
    config: RunConfig,
    *,
    run_id: str,
) -> list[BlockSink]:
    """The scene's output sinks, in the order they take each block."""
    tags = {"MODEL_ID": spec.model_id, "RUN_ID": run_id, "SOURCE": scene.path.name}
    name, z = scene.name, config.compress
    sinks: list[BlockSink] = [
        MaskSink(sdir / f"{name}_mask.tif", scene, spec, tags, compress=z)
    ]
    roles = ["confidence"] + (["probabilities"] if config.probabilities else [])
    try:
        sinks.extend(
            ProbSink(
                sdir / f"{name}_{role}.tif", scene, spec, tags, role=role, compress=z
            )
            for role in roles
        )
        sinks.extend(extra_sinks(scene, grid, spec, sdir, config, tags))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks


def open_stream(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    store: RunStore,
    sdir: Path,
    config: RunConfig,
    *,
    run_id: str,
    done: list[int],
) -> BlockStream:
    """A :class:`~geolabel.stitch.stream.BlockStream` writing this scene's outputs
    while its tiles run (``done``: flat indexes of tiles already in the store);
    :func:`finalize_scene` publishes what it wrote."""
    return BlockStream(
        grid,
        lambda tile: store.read_core(tile.core_window),
        HaloCache(store.read_halo, size=halo_cache_entries(grid, store.channels)),
        spec.num_classes,
        lambda: open_sinks(scene, grid, spec, sdir, config, run_id=run_id),
        done,
    )


def finalize_scene(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    store: RunStore,
    sdir: Path,
    config: RunConfig,
    *,
    run_id: str,
    stream: BlockStream | None = None,
) -> dict[str, str]:
    """Write the scene's outputs from a complete run store; returns ``role -> path``.

    With a ``stream`` that wrote every core while the tiles ran (:func:`open_stream`),
    only its outputs' publishing is left; otherwise (no stream, or one that could not
    finish) every core is blended from the store here.
    """
    sinks = stream.take() if stream is not None else None
    if sinks is None:
        sinks = open_sinks(scene, grid, spec, sdir, config, run_id=run_id)
        try:
            # Sinks write on the thread that opened their files, one thread per
            # sink: GDAL datasets written from several threads lose blocks.
            for block in iter_blended(grid, store, spec.num_classes):
                for sink in sinks:
                    sink.write(block)
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
    outputs: dict[str, str] = {}
    try:
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
        path = vectorize_outputs(
            grid,
            Path(outputs["mask"]),
            Path(outputs["confidence"]),
            sdir / f"{scene.name}_predictions.gpkg",
            scene,
            spec,
            run_id,
        )
        outputs["vectors"] = str(path)

    outputs.update(style_scene_outputs(outputs, spec))
    return outputs
