"""Per-task strategies of the scene runner: what a tile writes, how a scene finalises.

The scene runner (:mod:`geolabel.scene_runner`) is the same for every task; it asks
the scene's :class:`SceneTask` (from :func:`scene_task`) only for

* the run token and the settings only finalize reads (a scene is reused when they match),
* ``open_sink()``: the :class:`~geolabel.execution.tile_loop.TileSink` each tile's
  prediction goes to (in this process, or on a dask worker that opens it again),
* ``damaged()``: tiles recorded done whose data has been lost since,
* ``stream()``: for in-process runs, start writing the outputs while the tiles run
  (``discard()`` drops that work when the scene does not finish),
* ``finalize()``: the scene's outputs once every tile is done.

=================  ===========================  ==================================
task               sink                          outputs
=================  ===========================  ==================================
segmentation       Zarr run store: weighted      COG mask / confidence /
                   probabilities (cores + halos) probabilities, vectors, uncertainty
detection          object store: boxes (+        ``NAME_detections.gpkg`` (seam-
                   instance outlines) per tile   merged), ``NAME_tiles.gpkg``
classification     object store: class scores    ``NAME_tiles.gpkg``
=================  ===========================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from geolabel.config import RunConfig
from geolabel.finalize import finalize_scene, open_stream
from geolabel.finalize_objects import finalize_objects, object_options
from geolabel.grid import Tile, TileGrid
from geolabel.io.object_store import ObjectStore
from geolabel.io.scene import Scene
from geolabel.io.store import RunStore
from geolabel.models.base import Prediction
from geolabel.models.ensemble import extra_channels, stacked_channels
from geolabel.models.spec import ModelSpec
from geolabel.stitch._halo import halo_size
from geolabel.stitch.blend import split_contribution
from geolabel.stitch.objects import detections_from_prediction
from geolabel.stitch.stream import BlockStream

__all__ = [
    "ObjectTask",
    "SceneTask",
    "SegmentationTask",
    "scene_task",
]


class SceneTask(Protocol):
    """What the scene runner needs from a task (see the module docstring)."""

    @property
    def spec(self) -> ModelSpec:
        """The model spec."""
        ...

    @property
    def scene(self) -> Scene:
        """The opened scene."""
        ...

    @property
    def grid(self) -> TileGrid:
        """The scene's tile grid."""
        ...

    @property
    def sdir(self) -> Path:
        """The scene's folder in the run folder."""
        ...

    @property
    def token(self) -> str:
        """Hash of everything that changes the stored tiles."""
        ...

    @property
    def sink_key(self) -> str:
        """See :class:`~geolabel.execution.tile_loop.SinkSource`."""
        ...

    def info(self) -> dict[str, Any]:
        """Task-specific entries of the scene's record in ``run.json``."""
        ...

    def finalize_settings(self) -> dict[str, Any]:
        """Settings only finalize reads (not in the token)."""
        ...

    def open_sink(self) -> Any:
        """The scene's tile sink (created on first use)."""
        ...

    def damaged(self, sink: Any, done: list[Tile]) -> list[str]:
        """Ids of ``done`` tiles whose stored data is lost or damaged."""
        ...

    def stream(self, sink: Any, done: list[Tile]) -> None:
        """Begin finalising while this process runs the tiles (``done``: in the
        sink already); :meth:`finalize` then uses what was written."""
        ...

    def discard(self, sink: Any) -> None:
        """Drop the work of :meth:`stream` (the scene did not finish); idempotent."""
        ...

    def finalize(self, sink: Any) -> dict[str, str]:
        """Write the scene's outputs; returns ``role -> path``."""
        ...


class _StoreSink:
    """Segmentation: each tile's weighted probabilities into the Zarr run store."""

    kind = "probabilities"

    def __init__(self, store: RunStore, grid: TileGrid, dead_zone: float) -> None:
        self.store = store
        self.grid = grid
        self.dead_zone = dead_zone
        self.index = {t.id: i for i, t in enumerate(grid)}
        #: finalize running beside the tiles (:meth:`SegmentationTask.stream`)
        self.stream: BlockStream | None = None

    def write(self, tile: Tile, pred: Prediction, valid: npt.NDArray[np.bool_]) -> None:
        core, halo = split_contribution(
            self.grid,
            tile,
            stacked_channels(pred, self.store.channels),
            valid,
            self.dead_zone,
        )
        index = self.index[tile.id]
        self.store.write_core(tile.core_window, core)
        self.store.write_halo(index, halo)
        if self.stream is not None:  # in the store first: the stream may read it back
            self.stream.add(index, halo)


class _ObjectSink:
    """Detection / classification: each tile's raw output as one JSON record."""

    def __init__(self, store: ObjectStore, kind: str) -> None:
        self.store = store
        self.kind = kind

    def write(self, tile: Tile, pred: Prediction, valid: npt.NDArray[np.bool_]) -> None:
        record: dict[str, Any] = {"kind": pred.kind, "model_id": pred.model_id}
        if pred.kind == "scores":
            record["scores"] = [float(v) for v in pred.array]
        else:
            det = detections_from_prediction(pred)
            record["boxes"] = [[float(v) for v in b] for b in det.boxes]
            record["scores"] = [float(v) for v in det.scores]
            record["labels"] = [int(v) for v in det.labels]
            if det.polygons is not None:
                record["polygons"] = list(det.polygons)
        self.store.write(tile, record)


@dataclass(frozen=True, slots=True)
class _Bound:
    """The scene a task runs on (picklable: dask workers open the sink from it)."""

    spec: ModelSpec
    config: RunConfig
    scene: Scene
    grid: TileGrid
    sdir: Path
    token: str

    @property
    def sink_key(self) -> str:
        """Identifies the sink across processes (its folder and run token)."""
        return f"{self.sdir}#{self.token}"

    def _common_info(self) -> dict[str, Any]:
        return {
            "grid": self.grid.token,
            "tile_size": self.grid.tile_shape,
            "overlap": self.grid.overlap,
            "bands": list(self.scene.bands),
            "nodata": self.scene.nodata,
            "nodata_source": self.scene.nodata_source,
            "tiles_shape": list(self.grid.shape),
            "dir": str(self.sdir),
            **self.scene.provenance,
        }


@dataclass(frozen=True, slots=True)
class SegmentationTask(_Bound):
    """Blended class probabilities in a Zarr run store, finalised into COGs."""

    dead_zone: int
    channels: int

    def info(self) -> dict[str, Any]:
        """The scene record (with the dead zone)."""
        return self._common_info() | {"dead_zone": self.dead_zone}

    def finalize_settings(self) -> dict[str, Any]:
        """Compression and which outputs to write."""
        keys = ("compress", "probabilities", "vectors", "uncertainty")
        return {k: getattr(self.config, k) for k in keys}

    def open_sink(self) -> _StoreSink:
        """The scene's ``store.zarr``.

        Raises:
            RunStateError: the store was made with other settings.
        """
        store = RunStore(
            self.sdir / "store.zarr",
            self.grid,
            self.channels,
            halo_size(self.grid),
            self.token,
        )
        return _StoreSink(store, self.grid, self.dead_zone)

    def damaged(self, sink: _StoreSink, done: list[Tile]) -> list[str]:
        """Done tiles whose store chunks are missing or unreadable."""
        return sink.store.damaged_tiles(done)

    def stream(self, sink: _StoreSink, done: list[Tile]) -> None:
        """Blend and write each core as soon as its neighbours are in the store."""
        self.discard(sink)
        sink.stream = open_stream(
            self.scene,
            self.grid,
            self.spec,
            sink.store,
            self.sdir,
            self.config,
            run_id=self.token,
            done=[sink.index[t.id] for t in done],
        )

    def discard(self, sink: _StoreSink) -> None:
        """Stop the stream and drop its partial outputs."""
        stream, sink.stream = sink.stream, None
        if stream is not None:
            stream.abort()

    def finalize(self, sink: _StoreSink) -> dict[str, str]:
        """The COGs, vectors and uncertainty outputs (:mod:`geolabel.finalize`)."""
        stream, sink.stream = sink.stream, None
        return finalize_scene(
            self.scene,
            self.grid,
            self.spec,
            sink.store,
            self.sdir,
            self.config,
            run_id=self.token,
            stream=stream,
        )


@dataclass(frozen=True, slots=True)
class ObjectTask(_Bound):
    """Detection boxes or tile class scores, one record per tile, finalised to GPKG."""

    KINDS: ClassVar[dict[str, str]] = {"detection": "boxes", "classification": "scores"}

    def info(self) -> dict[str, Any]:
        """The scene record (with the task and the merge method)."""
        method, _, _ = object_options(self.config)
        return self._common_info() | {"task": self.spec.task, "merge": method}

    def finalize_settings(self) -> dict[str, Any]:
        """The seam merge and the ambiguous score band."""
        method, iou, band = object_options(self.config)
        return {"merge": method, "merge_iou": iou, "ambiguous_band": list(band)}

    def open_sink(self) -> _ObjectSink:
        """The scene's ``objects/`` folder.

        Raises:
            RunStateError: the store was made with other settings.
        """
        store = ObjectStore(self.sdir / "objects", self.token)
        return _ObjectSink(store, self.KINDS[self.spec.task])

    def damaged(self, sink: _ObjectSink, done: list[Tile]) -> list[str]:
        """Done tiles whose record file is gone."""
        return [t.id for t in done if not sink.store.has(t)]

    def stream(self, sink: _ObjectSink, done: list[Tile]) -> None:
        """Nothing: merging boxes across seams needs every tile's records."""

    def discard(self, sink: _ObjectSink) -> None:
        """Nothing to drop."""

    def finalize(self, sink: _ObjectSink) -> dict[str, str]:
        """The GeoPackage(s) (:mod:`geolabel.finalize_objects`)."""
        method, iou, band = object_options(self.config)
        return finalize_objects(
            self.scene,
            self.grid,
            self.spec,
            sink.store,
            self.sdir,
            run_id=self.token,
            method=method,
            iou_threshold=iou,
            ambiguous=band,
        )


def scene_task(
    spec: ModelSpec,
    config: RunConfig,
    scene: Scene,
    grid: TileGrid,
    dead_zone: int,
    sdir: Path,
) -> SegmentationTask | ObjectTask:
    """The strategy of ``spec.task`` for one planned scene.

    Raises:
        ConfigError: bad options (``--model-uncertainty``, ``ambiguous_band``).
    """
    common = {
        "grid": grid.token,
        "model": spec.model_id,
        "weights": spec.weights_sha256(),
        "bands": scene.bands,
    }
    if spec.task == "segmentation":
        channels = spec.num_classes + len(extra_channels(spec, config))
        token = config.output_token(**common, dead=dead_zone)
        return SegmentationTask(
            spec, config, scene, grid, sdir, token, dead_zone, channels
        )
    object_options(config)  # bad options fail before anything is made
    token = config.output_token(**common, task=spec.task)
    return ObjectTask(spec, config, scene, grid, sdir, token)
