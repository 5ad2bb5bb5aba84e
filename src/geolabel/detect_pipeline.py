"""Run and finalize detection and tile-classification models (``task`` != segmentation).

:func:`run_object_scene` is what :func:`geolabel.pipeline.run_scene` calls for a spec
whose task is ``detection`` or ``classification``: it runs the model over the fixed
batches of pending tiles (the next batch is read while the model runs), records each
tile's raw output in the :class:`~geolabel.io.object_store.ObjectStore`, then marks
it ``done`` in the manifest, so a killed run resumes with the unfinished tiles only.
When every tile is done it writes:

* detection: ``NAME_detections.gpkg``, layer ``detections`` (one box or instance
  polygon per object after seam merging, :mod:`geolabel.stitch.objects`), and
  ``NAME_tiles.gpkg``, layer ``tiles`` (tile cores with per-tile counts and how many
  boxes fall in the ambiguous score band);
* classification: ``NAME_tiles.gpkg``, layer ``tiles`` (one tile-core polygon with
  the class scores of the tile).

Options come from ``RunConfig.extra``: ``merge`` (``wbf``/``nms``/``ownership``),
``merge_iou`` (0.5) and ``ambiguous_band`` (``[0.3, 0.7]``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geolabel.config import RunConfig
from geolabel.errors import ConfigError, GeolabelError, ModelOutputError
from geolabel.grid import Tile, TileGrid
from geolabel.io.manifest import Manifest, read_manifest
from geolabel.io.object_store import ObjectStore
from geolabel.io.scene import Scene
from geolabel.io.vector import GpkgWriter
from geolabel.models.base import Batch, ModelBackend
from geolabel.models.spec import ModelSpec
from geolabel.stitch.georef import boxes_to_map, geometry_to_map
from geolabel.stitch.objects import TileDetections, merge_detections

if TYPE_CHECKING:
    from geolabel.pipeline import Progress, SceneResult

__all__ = ["AMBIGUOUS_BAND", "finalize_objects", "run_object_scene"]

logger = logging.getLogger(__name__)

#: default score band whose boxes count as ambiguous in the per-tile layer.
AMBIGUOUS_BAND = (0.3, 0.7)


def _options(config: RunConfig) -> tuple[str, float, tuple[float, float]]:
    extra = config.extra or {}
    method = str(extra.get("merge", "wbf"))
    iou = float(extra.get("merge_iou", 0.5))
    band = tuple(float(v) for v in extra.get("ambiguous_band", AMBIGUOUS_BAND))
    if len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0:
        raise ConfigError(
            f"ambiguous_band must be [low, high] within 0..1, got {band!r}"
        )
    return method, iou, (band[0], band[1])


def _run_tiles(
    scene: Scene,
    spec: ModelSpec,
    model: ModelBackend,
    store: ObjectStore,
    manifest: Manifest,
    batches: list[list[Tile]],
    tick: Callable[[int], None],
) -> dict[str, float]:
    """Run the model over ``batches`` (reading ahead) and record every tile."""
    from geolabel.execution.tile_loop import failed_rows, read_batch

    timings = {"read": 0.0, "model": 0.0, "write": 0.0}
    want = "scores" if spec.task == "classification" else "boxes"
    with (
        scene.open() as ds,
        ThreadPoolExecutor(1, thread_name_prefix="geolabel-read") as pool,
    ):

        def read(b: list[Tile]) -> tuple[Batch, float]:
            t0 = time.perf_counter()
            return read_batch(scene, b, spec, ds), time.perf_counter() - t0

        ahead: Future[tuple[Batch, float]] | None = (
            pool.submit(read, batches[0]) if batches else None
        )
        for k, tiles in enumerate(batches):
            assert ahead is not None
            current = ahead
            ahead = pool.submit(read, batches[k + 1]) if k + 1 < len(batches) else None
            t0 = time.perf_counter()
            try:
                batch, dt = current.result()
                timings["read"] += dt
                t0 = time.perf_counter()
                preds = model.predict(batch)
                bad = [p.tile.id for p in preds if p.kind != want]
                if len(preds) != len(tiles) or bad:
                    raise ModelOutputError(
                        f"model {spec.model_id} ({spec.task}) must return {len(tiles)} "
                        f"{want!r} predictions; tiles {bad[:3]} got another kind"
                    )
            except GeolabelError as err:
                manifest.record(failed_rows(tiles, err))
                continue
            t1 = time.perf_counter()
            rows = []
            for tile, pred, valid in zip(tiles, preds, batch.valid, strict=True):
                store.write(pred)
                h, w = tile.read_window.shape
                rows.append(
                    {
                        "tile_id": tile.id,
                        "status": "done",
                        "model_id": spec.model_id,
                        "read_window": list(tile.read_window.to_rasterio()),
                        "seconds": round((t1 - t0) / len(tiles), 4),
                        "valid_fraction": round(float(valid[:h, :w].mean()), 4),
                    }
                )
            manifest.record(rows)
            timings["model"] += t1 - t0
            timings["write"] += time.perf_counter() - t1
            tick(len(tiles))
    return timings


def run_object_scene(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    model_factory: Callable[[], ModelBackend],
    config: RunConfig,
    sdir: Path,
    progress: Progress | None,
    res: SceneResult,
) -> SceneResult:
    """Run a detection or classification model over one scene and write its outputs.

    Fills and returns ``res`` (status ``done``, or ``incomplete`` with failed tiles).

    Raises:
        GeolabelError: bad options, a store of other settings, unreadable records.
    """
    from geolabel.execution.tile_loop import batches_of

    method, iou, band = _options(config)
    if (
        getattr(config, "shard", None) is not None
        or getattr(config, "cluster", "local") != "local"
    ):
        raise ConfigError(
            f"--shard/--cluster run segmentation models only; run the {spec.task} "
            f"model {spec.model_id} without them"
        )
    token = config.output_token(
        grid=grid.token,
        model=spec.model_id,
        weights=spec.weights_sha256(),
        bands=scene.bands,
        task=spec.task,
    )
    if config.overwrite and sdir.exists():
        shutil.rmtree(sdir)
    sdir.mkdir(parents=True, exist_ok=True)
    store = ObjectStore(sdir / "objects", token)
    res.tiles = len(grid)
    res.info = {
        "grid": grid.token,
        "tile_size": grid.tile_shape,
        "overlap": grid.overlap,
        "task": spec.task,
        "bands": list(scene.bands),
        "nodata": scene.nodata,
        "tiles_shape": list(grid.shape),
        "merge": method,
        "dir": str(sdir),
    }
    state = read_manifest(sdir / "manifest")

    def status(t: Tile) -> str | None:
        return state.get(t.id, {}).get("status")

    pending = {
        t.id
        for t in grid
        if status(t) != "done" and (config.retry_failed or status(t) != "failed")
    }
    batches = [
        b
        for b in batches_of(grid, config.batch_size)
        if any(t.id in pending for t in b)
    ]
    count = [sum(status(t) == "done" for t in grid)]

    def tick(n: int) -> None:
        count[0] += n
        if progress is not None:
            progress(scene.name, count[0], len(grid))

    tick(0)
    if batches:
        model = model_factory()
        with Manifest(sdir / "manifest") as manifest:
            res.timings.update(
                _run_tiles(scene, spec, model, store, manifest, batches, tick)
            )
    res.tiles_run = sum(len(b) for b in batches)
    state = read_manifest(sdir / "manifest")
    res.failed_tiles = sorted(t.id for t in grid if status(t) == "failed")
    missing = [t.id for t in grid if status(t) != "done"]
    if missing:
        res.status = "incomplete"
        first = (
            state.get(res.failed_tiles[0], {}).get("error")
            if res.failed_tiles
            else None
        )
        res.error = (
            f"{len(missing)} of {len(grid)} tiles not done ({len(res.failed_tiles)} failed"
            f"{': ' + first if first else ''}); re-run with --retry-failed"
        )
        return res
    t0 = time.perf_counter()
    res.outputs = finalize_objects(
        scene,
        grid,
        spec,
        store,
        sdir,
        run_id=token,
        method=method,
        iou_threshold=iou,
        ambiguous=band,
    )
    res.timings["finalize"] = time.perf_counter() - t0
    res.status = "done"
    return res


def _core_fields(tile: Tile) -> dict[str, int]:
    c = tile.core_window
    return {
        "row_off": c.row_off,
        "col_off": c.col_off,
        "height": c.height,
        "width": c.width,
    }


def _core_polygon(grid: TileGrid, tile: Tile) -> Any:
    c = tile.core_window
    box = boxes_to_map(
        grid.scene.transform, [[c.col_off, c.row_off, c.col_stop, c.row_stop]]
    )[0]
    return shapely.box(*box)


def finalize_objects(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    store: ObjectStore,
    sdir: Path,
    *,
    run_id: str,
    method: str = "wbf",
    iou_threshold: float = 0.5,
    ambiguous: tuple[float, float] = AMBIGUOUS_BAND,
) -> dict[str, str]:
    """Write the GeoPackage(s) of a complete object store; returns ``role -> path``.

    Raises:
        RunStateError: a tile record is missing or unreadable.
    """
    names, labels = spec.class_names, spec.labels()
    records = [(tile, store.read(tile)) for tile in grid]
    base = {"model_id": spec.model_id, "run_id": run_id, "status": "suggested"}
    if spec.task == "classification":
        writer = GpkgWriter(sdir / f"{scene.name}_tiles.gpkg", scene.grid.crs)
        try:
            recs, geoms = [], []
            for tile, doc in records:
                s = np.asarray(doc["scores"], dtype=np.float64)
                top = np.sort(s)[::-1]
                k = int(np.argmax(s))
                recs.append(
                    {
                        "tile_id": tile.id,
                        "row": tile.index[0],
                        "col": tile.index[1],
                        **_core_fields(tile),
                        "class_id": k,
                        "class_name": names[k],
                        "label": labels[k],
                        "score": round(float(s[k]), 6),
                        "margin": round(
                            float(top[0] - (top[1] if len(top) > 1 else 0.0)), 6
                        ),
                        **{
                            f"score_{n}": round(float(v), 6)
                            for n, v in zip(names, s, strict=True)
                        },
                        **base,
                    }
                )
                geoms.append(_core_polygon(grid, tile))
            writer.write("tiles", recs, geoms, geometry_type="Polygon")
            return {"tiles": str(writer.close())}
        except BaseException:
            writer.abort()
            raise
    dets = [
        TileDetections(
            tile,
            np.asarray(doc["boxes"], dtype=np.float64).reshape(-1, 4),
            doc["scores"],
            doc["labels"],
            doc.get("polygons"),
        )
        for tile, doc in records
    ]
    objects = merge_detections(grid, dets, method=method, iou_threshold=iou_threshold)  # type: ignore[arg-type]
    transform = grid.scene.transform
    writer = GpkgWriter(sdir / f"{scene.name}_detections.gpkg", scene.grid.crs)
    try:
        recs, geoms = [], []
        per_tile: dict[str, list[float]] = {t.id: [] for t in grid}
        for fid, obj in enumerate(objects, start=1):
            mb = boxes_to_map(transform, [obj.box])[0]
            geom = (
                shapely.box(*mb)
                if obj.geometry is None
                else geometry_to_map(transform, obj.geometry)
            )
            recs.append(
                {
                    "id": fid,
                    "class_id": obj.label,
                    "class_name": names[obj.label],
                    "label": labels[obj.label],
                    "score": round(obj.score, 6),
                    "tile_id": obj.tile_id,
                    "n_tiles": len(obj.sources),
                    "xmin": mb[0],
                    "ymin": mb[1],
                    "xmax": mb[2],
                    "ymax": mb[3],
                    "kind": "box" if obj.geometry is None else "instance",
                    **base,
                }
            )
            geoms.append(geom)
            per_tile[obj.tile_id].append(obj.score)
        writer.write("detections", recs, geoms)
        outputs = {"detections": str(writer.close())}
    except BaseException:
        writer.abort()
        raise
    lo, hi = ambiguous
    writer = GpkgWriter(sdir / f"{scene.name}_tiles.gpkg", scene.grid.crs)
    try:
        trecs, tgeoms = [], []
        for tile in grid:
            s = np.asarray(per_tile[tile.id])
            n_amb = int(((s >= lo) & (s <= hi)).sum())
            trecs.append(
                {
                    "tile_id": tile.id,
                    "row": tile.index[0],
                    "col": tile.index[1],
                    **_core_fields(tile),
                    "n_detections": len(s),
                    "n_ambiguous": n_amb,
                    "ambiguous_fraction": round(n_amb / len(s), 6) if len(s) else 0.0,
                    "mean_score": round(float(s.mean()), 6) if len(s) else None,
                    "model_id": spec.model_id,
                    "run_id": run_id,
                }
            )
            tgeoms.append(_core_polygon(grid, tile))
        writer.write("tiles", trecs, tgeoms, geometry_type="Polygon")
        logger.info("%s: %d objects from %d tiles", scene.name, len(objects), len(grid))
        return {**outputs, "tiles": str(writer.close())}
    except BaseException:
        writer.abort()
        raise
