"""The tile loop of ``predict``: a staged pipeline with bounded queues.

::

    decode + normalise      model            the task's sink       manifest
    (reader threads)  ──▶  (this thread) ──▶ (writer threads) ──▶  (this thread,
     one dataset each        predict          TileSink.write         in batch order)

Every stage runs beside the others; at most :func:`stage_depth` batches wait on each
side of the model, so memory does not grow with the scene. Writers run at a lower CPU
priority than the model (:func:`lower_priority`). Readers decode in the
file's own data type and normalise in two passes straight into the batch
(``models.base.normalize_into``). A tile is recorded done only after its data is in
the store, and records are made in batch order on this thread, where a stop request
(``progress`` raising) is seen between batches.

:func:`run_tiles` is the one loop every task and every executor runs (in process, or on
a dask worker for its share of the batches, see ``execution/worker.py``); what a tile's
prediction writes is the task's :class:`TileSink` (the segmentation run store, the
detection / classification object store; writes of different batches may run in
different writer threads). :func:`read_batch` is also what the precision check reads
tiles with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from geolabel.errors import GeolabelError, ModelOutputError
from geolabel.grid import Tile, TileGrid
from geolabel.io.manifest import Manifest
from geolabel.io.scene import Scene
from geolabel.io.stages import lower_priority, stage_depth, stage_threads
from geolabel.models.base import Batch, ModelBackend, Prediction, normalize_into
from geolabel.models.spec import ModelSpec

__all__ = [
    "SinkSource",
    "TileSink",
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
    sink: TileSink,
    manifest: Manifest,
    batches: list[list[Tile]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Run the model over ``batches`` and record each tile (see the module docstring).

    A batch whose read or model raises a :class:`GeolabelError` (or whose predictions
    are not of the sink's kind) is recorded failed; an error that ``stops_run`` (the
    circuit breaker) stops the loop after recording it.

    Returns:
        Seconds by stage (``read`` and ``write`` summed over their threads).

    Raises:
        GeolabelError: a prediction does not fit the sink; whatever ``progress``
            raises (a stop request). Batches already written are recorded first.
    """
    timings = {"read": 0.0, "model": 0.0, "write": 0.0}
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
                        _check_kind(preds, tiles, sink.kind, spec)
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
