"""The tile loop of ``predict``: read batches, run the model, hand tiles to a sink.

:func:`run_tiles` is the one loop every task and every executor runs (in process, or on
a dask worker for its share of the batches, see ``execution/worker.py``); what a tile's
prediction writes is the task's :class:`TileSink` (the segmentation run store, the
detection / classification object store). :func:`read_batch` is also what the precision
check reads tiles with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from geolabel.errors import GeolabelError, ModelOutputError
from geolabel.grid import Tile, TileGrid
from geolabel.io.manifest import Manifest
from geolabel.io.scene import Scene
from geolabel.models.base import Batch, ModelBackend, Prediction, normalize
from geolabel.models.spec import ModelSpec

__all__ = [
    "SinkSource",
    "TileSink",
    "batches_of",
    "failed_rows",
    "read_batch",
    "run_tiles",
]

logger = logging.getLogger(__name__)


class TileSink(Protocol):
    """Where a task keeps each tile's prediction until the scene is finalised.

    Attributes:
        kind: the :class:`~geolabel.models.base.Prediction` kind the task takes.
    """

    kind: str

    def write(self, tile: Tile, pred: Prediction, valid: npt.NDArray[np.bool_]) -> None:
        """Store one tile's prediction durably (``valid``: the read window's mask).

        Raises:
            GeolabelError: the prediction does not fit the store.
        """
        ...


class SinkSource(Protocol):
    """A picklable recipe for a scene's sink: what a dask worker opens again."""

    @property
    def sink_key(self) -> str:
        """The same for every opening of the same sink (a cache key)."""
        ...

    def open_sink(self) -> TileSink:
        """Open (or create) the sink.

        Raises:
            RunStateError: it holds a run of other settings.
        """
        ...


def batches_of(grid: TileGrid, size: int) -> list[list[Tile]]:
    tiles = list(grid)
    return [tiles[i : i + size] for i in range(0, len(tiles), size)]


def read_batch(
    scene: Scene,
    tiles: list[Tile],
    spec: ModelSpec,
    ds: Any,
    shape: tuple[int, int] | None = None,
) -> Batch:
    """Read and normalise tiles into ``(n, bands, *shape)``.

    ``shape`` is the grid's tile shape (default: the model's tile size); read windows
    smaller than it (scenes smaller than a tile) are padded with invalid pixels.
    """
    if shape is None:
        shape = (spec.input.tile_size, spec.input.tile_size)
    data = np.zeros((len(tiles), len(scene.bands), *shape), dtype=np.float32)
    valid = np.zeros((len(tiles), *shape), dtype=bool)
    for i, tile in enumerate(tiles):
        read = scene.read(tile.read_window, dataset=ds)
        h, w = tile.read_window.shape
        data[i, :, :h, :w] = read.data
        valid[i, :h, :w] = read.valid
    return Batch(tuple(tiles), normalize(data, valid, spec, in_place=True), valid)


def run_tiles(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    model: ModelBackend,
    sink: TileSink,
    manifest: Manifest,
    batches: list[list[Tile]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Run the model over ``batches`` and record each tile.

    Three threads overlap: one reads the next batch, this one runs the model, one
    writes the previous batch into the sink and then the manifest (a tile is
    recorded done only once its data is written). At most one batch waits on
    each side, so memory does not grow with the scene. A batch whose read or model
    raises a :class:`GeolabelError` (or whose predictions are not of the sink's kind)
    is recorded failed; an error that ``stops_run`` (the circuit breaker) stops the
    loop after recording it.
    """
    timings = {"read": 0.0, "model": 0.0, "write": 0.0}

    def write(tiles: list[Tile], preds: list[Any], batch: Batch, dt: float) -> None:
        t0 = time.perf_counter()
        rows = []
        for tile, pred, valid in zip(tiles, preds, batch.valid, strict=True):
            h, w = tile.read_window.shape
            sink.write(tile, pred, valid[:h, :w])
            rows.append(
                {
                    "tile_id": tile.id,
                    "status": "done",
                    "read_window": list(tile.read_window.to_rasterio()),
                    "model_id": spec.model_id,
                    "seconds": round(dt / len(tiles), 4),
                    "valid_fraction": round(float(valid[:h, :w].mean()), 4),
                }
            )
        manifest.record(rows)
        timings["write"] += time.perf_counter() - t0
        if progress is not None:
            progress(len(tiles))

    with (
        scene.open() as ds,
        ThreadPoolExecutor(1, thread_name_prefix="geolabel-read") as pool,
        ThreadPoolExecutor(1, thread_name_prefix="geolabel-write") as writer,
    ):

        def read(b: list[Tile]) -> tuple[Batch, float]:
            t0 = time.perf_counter()
            shape = grid.tile_shape
            assert isinstance(shape, tuple)
            return read_batch(scene, b, spec, ds, shape), time.perf_counter() - t0

        ahead: Future[tuple[Batch, float]] | None = (
            pool.submit(read, batches[0]) if batches else None
        )
        written: Future[None] | None = None
        try:
            for k, tiles in enumerate(batches):
                assert ahead is not None
                try:
                    batch, dt = ahead.result()
                    timings["read"] += dt
                except GeolabelError as err:
                    ahead = (
                        pool.submit(read, batches[k + 1])
                        if k + 1 < len(batches)
                        else None
                    )
                    manifest.record(failed_rows(tiles, err))
                    continue
                ahead = (
                    pool.submit(read, batches[k + 1]) if k + 1 < len(batches) else None
                )
                t0 = time.perf_counter()
                try:
                    preds = model.predict(batch)
                    _check_kind(preds, tiles, sink.kind, spec)
                except GeolabelError as err:
                    manifest.record(failed_rows(tiles, err))
                    if getattr(
                        err, "stops_run", False
                    ):  # e.g. CircuitOpenError: stop, resume later
                        logger.error("%s: stopping the scene: %s", scene.path, err)
                        break
                    continue
                dt = time.perf_counter() - t0
                timings["model"] += dt
                if written is not None:
                    written.result()  # the previous batch is in the store
                written = writer.submit(write, tiles, preds, batch, dt)
        finally:
            if written is not None:
                written.result()
    return timings


def failed_rows(tiles: list[Tile], err: Exception) -> list[dict[str, Any]]:
    return [
        {"tile_id": t.id, "status": "failed", "error": f"{type(err).__name__}: {err}"}
        for t in tiles
    ]


def _check_kind(
    preds: list[Prediction], tiles: list[Tile], kind: str, spec: ModelSpec
) -> None:
    """Refuse a batch whose predictions are too few or not of the task's kind.

    Raises:
        ModelOutputError: naming the model, its task and the first tiles affected.
    """
    bad = [p.tile.id for p in preds if p.kind != kind]
    if len(preds) != len(tiles) or bad:
        raise ModelOutputError(
            f"model {spec.model_id} ({spec.task}) must return {len(tiles)} {kind!r} "
            f"predictions, got {len(preds)}; tiles {bad[:3]} got another kind"
        )
