"""A run folder as Python data: its record, its scenes, and their outputs as xarray.

:func:`open_run` reads ``RUN/run.json``; :meth:`Run.to_dataset` opens a scene's COGs
as one lazy, dask-chunked :class:`xarray.Dataset` with the scene's CRS and transform
(through rioxarray): ``class`` (the mask), ``confidence``, ``uncertainty`` and
``probabilities`` (one layer per class), each where the run wrote it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rioxarray
import xarray as xr

from geolabel.errors import RunStateError
from geolabel.io.run_record import find_outputs, matches_scene, read_record

__all__ = ["Run", "SceneRun", "open_run"]

logger = logging.getLogger(__name__)

#: output role -> Dataset variable.
VARIABLES = {
    "mask": "class",
    "confidence": "confidence",
    "uncertainty": "uncertainty",
    "probabilities": "probabilities",
}
#: Chunk side (pixels) of the lazy arrays: the COGs' 512 px blocks.
CHUNK = 512


@dataclass(frozen=True, slots=True)
class SceneRun:
    """One scene of a run: its status and its output files by role.

    Attributes:
        scene: the scene as recorded (a path relative to the run folder, a URL, or a
            STAC item).
        status: ``done``, ``failed`` or ``incomplete``.
        error: the one-line error of a scene that did not finish.
        outputs: role (``mask``, ``confidence``, ``probabilities``, ``uncertainty``,
            ``predictions``, ``tiles``...) -> path.
        info: the rest of the scene's record (grid, bands, nodata, STAC item...).
    """

    scene: str
    status: str
    error: str | None
    outputs: Mapping[str, Path]
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Run:
    """A run folder: what ``geolabel predict`` recorded in ``run.json``.

    Attributes:
        path: the run folder.
        record: the parsed ``run.json``.
        scenes: one :class:`SceneRun` per scene, in the record's order.

    .. versionadded:: 0.1
    """

    path: Path
    record: Mapping[str, Any]
    scenes: tuple[SceneRun, ...]

    @property
    def ok(self) -> bool:
        """True when every scene finished."""
        return all(s.status == "done" for s in self.scenes)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's class names by index."""
        return tuple(self.record.get("model", {}).get("classes") or ())

    def scene(self, name: str | None = None) -> SceneRun:
        """The scene ``name`` names (path, file name or stem; default: the only one).

        Raises:
            RunStateError: no such scene, or several and no ``name``.
        """
        if name is None:
            if len(self.scenes) != 1:
                listed = ", ".join(s.scene for s in self.scenes)
                raise RunStateError(
                    f"{self.path}: holds {len(self.scenes)} scenes ({listed}); name one"
                )
            return self.scenes[0]
        for s in self.scenes:
            if (
                matches_scene(self.path, s.scene, name)
                or s.info.get("stac_item") == name
            ):
                return s
        raise RunStateError(f"{self.path}: no scene {name!r}")

    def to_dataset(self, scene: str | None = None) -> xr.Dataset:
        """A scene's raster outputs as one lazy Dataset on the scene's grid.

        Variables (each where the run wrote it): ``class`` ``(y, x)`` the class index
        mask (its nodata value in ``attrs["nodata"]``), ``confidence`` ``(y, x)``,
        ``uncertainty`` ``(measure, y, x)``, ``probabilities`` ``(class_name, y, x)``
        with the class names as its coordinate. Arrays are dask-backed (512 x 512
        chunks, the COGs' blocks); ``ds.rio.crs`` and ``ds.rio.transform()`` are the
        scene's. Floats are NaN at nodata.

        Raises:
            RunStateError: the scene did not finish or has no raster outputs.
        """
        s = self.scene(scene)
        if s.status != "done":
            raise RunStateError(
                f"{self.path}: scene {s.scene} is {s.status}: {s.error or 'not done'}"
            )
        layers = {
            VARIABLES[role]: _open_raster(path, role, self.class_names)
            for role, path in s.outputs.items()
            if role in VARIABLES
        }
        if not layers:
            raise RunStateError(f"{self.path}: scene {s.scene} has no raster outputs")
        ds = xr.Dataset(layers)
        crs = next(iter(layers.values())).rio.crs
        if crs is not None:
            ds = ds.rio.write_crs(crs)
        ds.attrs.update(
            scene=s.scene,
            run=str(self.path),
            model=str(self.record.get("model", {}).get("id", "")),
        )
        return ds


def _open_raster(path: Path, role: str, class_names: tuple[str, ...]) -> xr.DataArray:
    """One COG as a lazy DataArray named and shaped for its role."""
    chunks = {"band": -1, "y": CHUNK, "x": CHUNK}
    da = rioxarray.open_rasterio(
        os.fspath(path), chunks=chunks, masked=False, lock=False
    )
    if not isinstance(da, xr.DataArray):  # subdatasets: not a geolabel output
        raise RunStateError(f"{path}: not a single raster ({role} output)")
    nodata = da.rio.nodata
    if role in ("mask", "confidence"):
        da = da.isel(band=0, drop=True)
    elif role == "probabilities":
        names = list(class_names)[: da.sizes["band"]]
        if len(names) == da.sizes["band"]:
            da = da.rename(band="class_name").assign_coords(class_name=names)
        else:
            da = da.rename(band="class_name")
    else:
        long = da.attrs.get("long_name") or ()
        described = [long] if isinstance(long, str) else list(long)
        measures = [str(d) if d else f"band{i + 1}" for i, d in enumerate(described)]
        da = da.rename(band="measure")
        if len(measures) == da.sizes["measure"]:
            da = da.assign_coords(measure=measures)
    da.attrs = {"nodata": nodata, "source": str(path)}
    da.encoding = {}
    return da


def open_run(path: str | os.PathLike[str]) -> Run:
    """Read a run folder written by ``geolabel predict`` (or :func:`geolabel.predict`).

    Examples:
        >>> import tempfile, pathlib, geolabel
        >>> from geolabel.testing import make_scene, write_toy_spec
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> scene = make_scene(tmp / "a.tif", shape=(64, 80))
        >>> _ = geolabel.predict(scene, write_toy_spec(tmp / "toy.yaml"), tmp / "run")
        >>> run = geolabel.open_run(tmp / "run")
        >>> [(s.scene, s.status) for s in run.scenes], run.class_names
        ([('../a.tif', 'done')], ('class0', 'class1', 'class2'))
        >>> sorted(run.to_dataset("a").data_vars)
        ['class', 'confidence', 'probabilities', 'uncertainty']

    Raises:
        RunStateError: no ``run.json`` there, or not a run record.

    .. versionadded:: 0.1
    """
    run_dir = Path(path)
    doc = read_record(run_dir)
    outs: dict[str, dict[str, Path]] = {}
    for rec, role, p in find_outputs(run_dir, doc):
        outs.setdefault(rec, {})[role] = p
    scenes = tuple(
        SceneRun(
            scene=str(s.get("scene")),
            status=str(s.get("status")),
            error=s.get("error"),
            outputs=outs.get(str(s.get("scene")), {}),
            info={k: v for k, v in s.items() if k not in ("scene", "status", "error")},
        )
        for s in doc.get("scenes", [])
    )
    return Run(run_dir, doc, scenes)
