"""What a dask worker runs: one batch of tiles, with the model cached per worker process.

A task is one batch of the scene's fixed batch partition. The worker reads the batch,
runs the model, writes each tile into the scene's sink on the shared file system (the
task's: the segmentation Zarr run store, one writer per chunk, written whole; the
detection / classification object store, one file per tile) and returns the manifest
rows; the driver
records them only when the result has come back, so a worker lost mid-batch leaves
nothing recorded and the scheduler simply runs the batch again elsewhere.

The model is loaded once per worker process and kept in a module-level cache keyed by
the spec's content and the run's settings (device, precision, threads, wrappers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import rasterio

from geolabel.config import RunConfig
from geolabel.execution.model_load import load_run_model
from geolabel.execution.plan import GDAL_ENV
from geolabel.execution.tile_loop import SinkSource, TileSink, run_tiles
from geolabel.grid import Tile, TileGrid
from geolabel.io.scene import Scene
from geolabel.models.base import ModelBackend
from geolabel.models.spec import ModelSpec

__all__ = ["BatchJob", "BatchOutcome", "cached_models", "model_loads", "run_batch"]

logger = logging.getLogger(__name__)


#: RunConfig fields that never change the loaded model.
_NOT_MODEL = frozenset(
    {
        "scenes",
        "out",
        "cluster",
        "shard",
        "overwrite",
        "retry_failed",
        "probabilities",
        "vectors",
        "tile_size",
        "overlap",
        "dead_zone",
        "batch_size",
        "bands",
        "nodata",
        "allow_vrt",
        "allow_pixel_space",
        "uncertainty",
    }
)

#: models kept per worker process (least recently used ones are closed).
MAX_CACHED_MODELS = 2


@dataclass(frozen=True, slots=True)
class BatchJob:
    """Everything a worker needs for the batches of one scene (small, picklable).

    Attributes:
        scene: the opened scene (path, bands, nodata).
        grid: the scene's tile grid.
        spec: the model spec.
        config: the run's settings (device, precision, threads, model wrappers).
        task: the scene's task strategy; the worker opens its sink (on a file system
            the workers share).
    """

    scene: Scene
    grid: TileGrid
    spec: ModelSpec
    config: RunConfig
    task: SinkSource

    @property
    def model_key(self) -> str:
        """Cache key of the model: the spec's content and the settings a model may read.

        Paths, tiling and output options are left out, so runs of the same model on a
        long-lived cluster share the loaded model.
        """
        settings = {
            k: v for k, v in self.config.to_dict().items() if k not in _NOT_MODEL
        }
        text = json.dumps(
            [self.spec.model_dump_json(), self.spec.source, settings],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class BatchOutcome:
    """What a batch task returns: the manifest rows and where the time went."""

    rows: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    worker_pid: int = 0


class _Rows:
    """Collects the rows ``run_tiles`` would record (the driver records them)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, rows: Iterable[dict[str, Any]]) -> None:
        self.rows.extend(rows)


class _Serialized:
    """A cached model shared by a worker's threads: one ``predict`` at a time."""

    def __init__(self, model: ModelBackend) -> None:
        self.model = model
        self.lock = threading.Lock()

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec

    def predict(self, batch: Any) -> Any:
        with self.lock:
            return self.model.predict(batch)

    def close(self) -> None:
        self.model.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


_LOCK = threading.Lock()
_MODELS: OrderedDict[str, _Serialized] = OrderedDict()
_SINKS: dict[str, TileSink] = {}
_LOADS: dict[str, int] = {}


def _model(job: BatchJob) -> _Serialized:
    key = job.model_key
    with _LOCK:
        hit = _MODELS.get(key)
        if hit is None:
            logger.info("worker %d: loading model %s", os.getpid(), job.spec.model_id)
            hit = _Serialized(load_run_model(job.spec, job.config))
            _MODELS[key] = hit
            _LOADS[key] = _LOADS.get(key, 0) + 1
            while len(_MODELS) > MAX_CACHED_MODELS:
                _, old = _MODELS.popitem(last=False)
                old.close()
        _MODELS.move_to_end(key)
        return hit


def _sink(job: BatchJob) -> TileSink:
    key = job.task.sink_key
    with _LOCK:
        sink = _SINKS.get(key)
        if sink is None:
            sink = job.task.open_sink()
            _SINKS[key] = sink
        return sink


def model_loads() -> dict[str, int]:
    """How many times this process loaded each model (run on workers via ``client.run``)."""
    with _LOCK:
        return dict(_LOADS)


def cached_models() -> int:
    """Number of models cached in this process."""
    with _LOCK:
        return len(_MODELS)


def run_batch(job: BatchJob, tiles: list[Tile]) -> BatchOutcome:
    """Run one batch on a worker and write its tiles into the task's sink.

    The batch goes through ``tile_loop.run_tiles``, the same code as the in-process path,
    so the store bytes are the same wherever it runs.

    Args:
        job: the scene's batch job.
        tiles: the batch's tiles, in batch order.

    Returns:
        The manifest rows (``done``, or ``failed`` when reading or the model raised a
        ``GeolabelError``) for the driver to record.
    """
    model = _model(job)
    sink = _sink(job)
    rows = _Rows()
    with rasterio.Env(**GDAL_ENV):
        timings = run_tiles(
            job.scene,
            job.grid,
            job.spec,
            model,
            sink,
            rows,  # type: ignore[arg-type]
            [tiles],
        )
    return BatchOutcome(rows.rows, timings, os.getpid())
