"""The tile loop of ``predict``: a staged pipeline with bounded queues.

::

    decode + normalise      model            weights, store        manifest
    (reader threads)  ──▶  (this thread) ──▶ (writer threads) ──▶  (this thread,
     one dataset each        predict          split_contribution     in batch order)

Every stage runs beside the others; at most :func:`stage_depth` batches wait on each
side of the model, so memory does not grow with the scene. Writers run at a lower CPU
priority than the model (:func:`lower_priority`). Readers decode in the
file's own data type and normalise in two passes straight into the batch
(``models.base.normalize_into``). A tile is recorded done only after its data is in
the store, and records are made in batch order on this thread, where a stop request
(``progress`` raising) is seen between batches.

:func:`run_tiles` is the one loop every executor runs (in process, or on a dask worker
for its share of the batches, see ``execution/worker.py``); :func:`read_batch` is also
what the precision check and the object pipeline read tiles with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from geolabel.errors import GeolabelError
from geolabel.grid import Tile, TileGrid
from geolabel.io.manifest import Manifest
from geolabel.io.scene import Scene
from geolabel.io.store import RunStore
from geolabel.models.base import Batch, ModelBackend, Prediction, normalize_into
from geolabel.models.ensemble import stacked_channels
from geolabel.models.spec import ModelSpec
from geolabel.stitch.blend import split_contribution

__all__ = [
    "batches_of",
    "failed_rows",
    "lower_priority",
    "read_batch",
    "run_tiles",
    "stage_depth",
    "stage_threads",
]

logger = logging.getLogger(__name__)

Rows = list[dict[str, Any]]


def batches_of(grid: TileGrid, size: int) -> list[list[Tile]]:
    tiles = list(grid)
    return [tiles[i : i + size] for i in range(0, len(tiles), size)]


def stage_threads() -> int:
    """Threads of each I/O stage (decode, store): half the cores, 1 to 4.

    The model's own threads (torch, ONNX) take the other half; on a 2-core machine
    each stage has one thread and the stages overlap with the model.
    """
    return max(1, min(4, (os.cpu_count() or 2) // 2))


#: How much lower than the model's the I/O stages' CPU priority is (Linux ``nice``).
STAGE_NICE = 10


def lower_priority() -> None:
    """Lower this thread's CPU priority by :data:`STAGE_NICE` (Linux; else nothing).

    The writer threads run so: the model's threads (torch, ONNX) then keep the cores
    they compute on (a 2-thread forward whose core is taken by a store write waits for
    it at every barrier), and the writes run in the gaps the model leaves, at full
    speed wherever a core is idle (e.g. beside a GPU model). They are off the model's
    path: only a full write queue stops the loop. The readers keep the model's
    priority: they feed it, and at a lower priority other processes on a shared
    machine starve them (measured: 151 s for 11 s of reads at 20000²).
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), STAGE_NICE)


def stage_depth() -> int:
    """Batches waiting on each side of the model (bounds the loop's memory)."""
    return stage_threads() + 1


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

    Raises:
        SceneReadError: a window cannot be read.
    """
    if shape is None:
        shape = (spec.input.tile_size, spec.input.tile_size)
    data = np.empty((len(tiles), len(scene.bands), *shape), dtype=np.float32)
    valid = np.zeros((len(tiles), *shape), dtype=bool)
    for i, tile in enumerate(tiles):
        inner, raw, ok = scene.read_native(tile.read_window, dataset=ds)
        if inner.shape != tuple(shape):  # padding: invalid pixels are 0
            data[i] = 0.0
        if raw is None:
            continue
        sub = inner.relative_to(tile.read_window).slices
        normalize_into(raw, ok, spec, data[(i, slice(None), *sub)])
        valid[(i, *sub)] = ok
    return Batch(tuple(tiles), data, valid)


class _Datasets:
    """One open dataset per reader thread (a rasterio dataset is not thread-safe)."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Any] = []

    def get(self) -> Any:
        ds = getattr(self._local, "ds", None)
        if ds is None:
            ds = self._local.ds = self.scene.open()
            with self._lock:
                self._opened.append(ds)
        return ds

    def close(self) -> None:
        for ds in self._opened:
            ds.close()
        self._opened.clear()


def run_tiles(
    scene: Scene,
    grid: TileGrid,
    spec: ModelSpec,
    model: ModelBackend,
    store: RunStore,
    manifest: Manifest,
    batches: list[list[Tile]],
    dead_zone: float,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Run the model over ``batches`` and record each tile (see the module docstring).

    Returns:
        Seconds by stage (``read`` and ``write`` summed over their threads).

    Raises:
        GeolabelError: a prediction does not fit the store; whatever ``progress``
            raises (a stop request). Batches already written are recorded first.
    """
    timings = {"read": 0.0, "model": 0.0, "write": 0.0}
    index = {t.id: i for i, t in enumerate(grid)}
    shape = grid.tile_shape
    assert isinstance(shape, tuple)
    datasets = _Datasets(scene)
    depth = stage_depth()

    def read(tiles: list[Tile]) -> tuple[Batch, float]:
        t0 = time.perf_counter()
        batch = read_batch(scene, tiles, spec, datasets.get(), shape)
        return batch, time.perf_counter() - t0

    def write(
        tiles: list[Tile], preds: list[Prediction], batch: Batch, dt: float
    ) -> tuple[Rows, float]:
        t0 = time.perf_counter()
        rows = []
        for tile, pred, valid in zip(tiles, preds, batch.valid, strict=True):
            h, w = tile.read_window.shape
            core, halo = split_contribution(
                grid,
                tile,
                stacked_channels(pred, store.channels),
                valid[:h, :w],
                dead_zone,
            )
            store.write_core(tile.core_window, core)
            store.write_halo(index[tile.id], halo)
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
        return rows, time.perf_counter() - t0

    def record(done: Future[tuple[Rows, float]]) -> None:
        rows, dt = done.result()
        manifest.record(rows)
        timings["write"] += dt
        if progress is not None:
            progress(len(rows))

    threads = stage_threads()
    try:
        with (
            ThreadPoolExecutor(threads, thread_name_prefix="geolabel-read") as readers,
            ThreadPoolExecutor(
                threads, thread_name_prefix="geolabel-write", initializer=lower_priority
            ) as writers,
        ):
            reads: deque[Future[tuple[Batch, float]]] = deque()
            writes: deque[Future[tuple[Rows, float]]] = deque()
            queued = 0

            def read_ahead() -> None:
                nonlocal queued
                while queued < len(batches) and len(reads) < depth:
                    reads.append(readers.submit(read, batches[queued]))
                    queued += 1

            try:
                for tiles in batches:
                    read_ahead()
                    try:
                        batch, dt = reads.popleft().result()
                        timings["read"] += dt
                    except GeolabelError as err:
                        manifest.record(failed_rows(tiles, err))
                        continue
                    read_ahead()
                    t0 = time.perf_counter()
                    try:
                        preds = model.predict(batch)
                    except GeolabelError as err:
                        manifest.record(failed_rows(tiles, err))
                        if getattr(err, "stops_run", False):  # e.g. CircuitOpenError
                            logger.error("%s: stopping the scene: %s", scene.path, err)
                            break
                        continue
                    dt = time.perf_counter() - t0
                    timings["model"] += dt
                    while len(writes) >= depth:
                        record(writes.popleft())
                    writes.append(writers.submit(write, tiles, preds, batch, dt))
                while writes:
                    record(writes.popleft())
            finally:
                for pending in reads:
                    pending.cancel()
                _record_written(writes, manifest)
    finally:
        datasets.close()
    return timings


def _record_written(
    writes: deque[Future[tuple[Rows, float]]], manifest: Manifest
) -> None:
    """After an error or a stop: record the batches whose writes still complete."""
    while writes:
        try:
            rows, _ = writes.popleft().result()
        except (GeolabelError, OSError) as err:  # the first error is the one raised
            logger.debug("a batch write failed while stopping: %s", err)
            continue
        manifest.record(rows)


def failed_rows(tiles: list[Tile], err: Exception) -> list[dict[str, Any]]:
    return [
        {"tile_id": t.id, "status": "failed", "error": f"{type(err).__name__}: {err}"}
        for t in tiles
    ]
