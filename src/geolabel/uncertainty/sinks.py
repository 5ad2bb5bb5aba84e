"""Finalize sinks: the per-pixel uncertainty COG and the per-tile GeoPackage layer.

``NAME_uncertainty.tif`` is float32, aligned with the mask, ``NaN`` where the scene is
nodata. Band 1 is the measure chosen for the run (``--uncertainty``); further bands are
the model-based channels a backend wrapper stitched (``bald``, ``tta_disagreement``,
``ensemble_disagreement``). Every band carries ``MEASURE``, ``SCALE`` and
``DEFINITION`` tags; the dataset tags list the band measures.

``NAME_tiles.gpkg`` holds layer ``tiles``: one polygon per tile core (scene CRS) with
the aggregates of :func:`geolabel.uncertainty.aggregate.aggregate_tile`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from shapely.geometry import box

from geolabel.errors import ConfigError
from geolabel.io.raster import CogWriter
from geolabel.io.tempnames import partial_path
from geolabel.io.vector import GpkgWriter
from geolabel.models.ensemble import extra_channels
from geolabel.stitch.blend import Block
from geolabel.uncertainty.aggregate import AggregateOptions, aggregate_tile
from geolabel.uncertainty.measures import MEASURES, MODEL_MEASURES, compute_measure

__all__ = [
    "TileLayerSink",
    "UncertaintySink",
    "describe_output",
    "extra_sinks",
    "uncertainty_bands",
]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
SCALE = "0-1"


def uncertainty_bands(config: Any, extra_names: tuple[str, ...]) -> list[str]:
    """Band measures of the uncertainty COG for a run config.

    Raises:
        ConfigError: ``config.uncertainty`` is not a known measure or ``none``.
    """
    measure = getattr(config, "uncertainty", "entropy")
    if measure != "none" and measure not in MEASURES:
        raise ConfigError(
            f"--uncertainty {measure!r} is unknown; choose one of {', '.join(MEASURES)} or none"
        )
    return ([measure] if measure != "none" else []) + list(extra_names)


class UncertaintySink:
    """Writes ``NAME_uncertainty.tif`` core by core (role ``uncertainty``).

    Args:
        path: final COG path.
        scene: the scene (grid and AREA_OR_POINT).
        bands: measure per band; stitched probability measures first, then the names of
            the ``extra`` channels in stitched order.
        tags: provenance tags.
        compress: COG compression (``zstd`` or ``deflate``, see CogWriter).
    """

    role = "uncertainty"

    def __init__(
        self,
        path: Path,
        scene: Any,
        bands: list[str],
        tags: dict[str, str],
        *,
        compress: str = "zstd",
    ) -> None:
        """Create the partial COG."""
        self.bands = bands
        self.n_prob = sum(1 for b in bands if b in MEASURES)
        defs = {**MEASURES, **MODEL_MEASURES}
        self.w = CogWriter(
            path,
            scene.grid,
            count=len(bands),
            dtype="float32",
            nodata=float("nan"),
            resampling="average",
            descriptions=list(bands),
            tags={
                **tags,
                "MEASURE": bands[0],
                "MEASURES": ",".join(bands),
                "SCALE": SCALE,
            },
            band_tags=[
                {"MEASURE": b, "SCALE": SCALE, "DEFINITION": defs.get(b, b)}
                for b in bands
            ],
            area_or_point=scene.area_or_point,
            compress=compress,
        )
        self.last: (
            tuple[str, F32, npt.NDArray[np.bool_], npt.NDArray[np.integer[Any]]] | None
        ) = None

    def write(self, block: Block) -> None:
        """Compute the bands over the block's core and write them (NaN at nodata)."""
        probs, valid, extra = block.probs, block.valid, block.extra
        rows, cols = probs.shape[1:]
        data = np.empty((len(self.bands), rows, cols), dtype=np.float32)
        for i, name in enumerate(self.bands[: self.n_prob]):
            data[i] = compute_measure(name, probs)
        k = len(self.bands) - self.n_prob
        if k:
            if extra.shape[0] != k:
                raise ConfigError(
                    f"the run store has {extra.shape[0]} extra uncertainty channels, "
                    f"expected {k}"
                )
            data[self.n_prob :] = np.clip(extra, 0.0, 1.0)
        if not valid.all():
            data[:, ~valid] = np.nan
        self.w.write(block.tile.core_window, data)
        self.last = (block.tile.id, data, valid, block.classes)

    def close(self) -> Path:
        """Publish the COG."""
        return self.w.close()

    def abort(self) -> None:
        """Drop partial files."""
        self.w.abort()


class TileLayerSink:
    """Writes ``NAME_tiles.gpkg`` (layer ``tiles``) from the bands of an :class:`UncertaintySink`.

    It must come after its source in finalize's sink list (it reuses the block the
    source just computed).
    """

    role = "tiles"

    def __init__(
        self,
        path: Path,
        scene: Any,
        source: UncertaintySink,
        class_names: tuple[str, ...],
        options: AggregateOptions | None = None,
    ) -> None:
        """Start collecting records."""
        self.path = path
        self.scene = scene
        self.source = source
        self.class_names = class_names
        self.options = options or AggregateOptions()
        self.records: list[dict[str, Any]] = []
        self.geoms: list[Any] = []

    def write(self, block: Block) -> None:
        """Aggregate the source's block of the same tile (written just before)."""
        tile = block.tile
        last = self.source.last
        if last is None or last[0] != tile.id:
            raise RuntimeError("TileLayerSink must follow its UncertaintySink")
        _, data, vmask, classes = last
        bands = {name: data[i] for i, name in enumerate(self.source.bands)}
        rec = aggregate_tile(bands, vmask, classes, self.class_names, self.options)
        w = tile.core_window
        row: dict[str, Any] = {
            "tile_id": tile.id,
            "row": tile.index[0],
            "col": tile.index[1],
            "row_off": w.row_off,
            "col_off": w.col_off,
            "height": w.height,
            "width": w.width,
            "measure": self.source.bands[0],
            **rec,
        }
        self.records.append(row)
        t = self.scene.grid.transform
        x0, y0 = t @ (w.col_off, w.row_off)
        x1, y1 = t @ (w.col_off + w.width, w.row_off + w.height)
        self.geoms.append(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))

    def close(self) -> Path:
        """Write the layer and publish the file."""
        writer = GpkgWriter(self.path, self.scene.grid.crs)
        try:
            writer.write("tiles", self.records, self.geoms, geometry_type="Polygon")
            return writer.close()
        except BaseException:
            writer.abort()
            raise

    def abort(self) -> None:
        """Nothing on disk until close."""
        partial_path(self.path, ".partial.gpkg").unlink(missing_ok=True)


def extra_sinks(
    scene: Any, grid: Any, spec: Any, sdir: Path, config: Any, tags: dict[str, str]
) -> list[Any]:
    """The uncertainty COG and tile layer sinks of a run (none for ``--uncertainty none``
    without model-based channels).

    Raises:
        ConfigError: unknown measure.
    """
    bands = uncertainty_bands(config, extra_channels(spec, config))
    if not bands:
        return []
    unc = UncertaintySink(
        sdir / f"{scene.name}_uncertainty.tif",
        scene,
        bands,
        tags,
        compress=getattr(config, "compress", "zstd"),
    )
    tiles = TileLayerSink(
        sdir / f"{scene.name}_tiles.gpkg", scene, unc, tuple(spec.class_names)
    )
    return [unc, tiles]


def describe_output(role: str, path: str) -> dict[str, Any]:
    """Extra run.json fields of an output: measures and scale of the uncertainty COG."""
    if role == "uncertainty":
        with rasterio.open(path) as ds:
            tags = ds.tags()
        return {
            "measure": tags.get("MEASURE"),
            "bands": tags.get("MEASURES", "").split(","),
            "scale": tags.get("SCALE", SCALE),
        }
    if role == "tiles":
        return {"layer": "tiles"}
    return {}
