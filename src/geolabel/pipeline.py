"""plan -> run -> finalize for ``geolabel predict``.

Per scene: open and validate, plan the tile grid, run the model over fixed batches of
pending tiles (``execution/tile_loop.py``: the next batch is read and the previous one
written while the model runs), write each tile's weighted probabilities into the Zarr
run store, record it in the manifest, and when every tile is done write the outputs. A
failing scene is reported and the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rasterio

from geolabel import __version__
from geolabel.config import RunConfig
from geolabel.errors import (
    GeolabelError,
    InputScalingWarning,
    OutputExistsError,
    SceneReadError,
    describe_error,
)
from geolabel.execution.executors import BatchExecutor, LocalExecutor, open_executor
from geolabel.execution.shards import (
    begin_shard,
    shard_batches,
    write_shard_status,
    writer_name,
)
from geolabel.execution.tile_loop import batches_of
from geolabel.grid import Tile, TileGrid
from geolabel.io.disk import disk_problem
from geolabel.io.finished import read_finished, write_finished
from geolabel.io.limits import SceneLimits, check_tiles, check_time
from geolabel.io.manifest import Manifest, read_manifest
from geolabel.io.run_record import (
    merge_records,
    read_record,
    write_record,
)
from geolabel.io.runlock import run_folder_lock
from geolabel.io.scene import Scene, open_scene
from geolabel.io.scene_dirs import SceneDirs
from geolabel.io.stac import Resampling
from geolabel.io.store import RunStore
from geolabel.models.base import ModelBackend
from geolabel.models.ensemble import extra_channels, wrap_backend
from geolabel.models.precision import precision_record
from geolabel.models.preflight import check_tile_size, preflight_model
from geolabel.models.registry import load_model
from geolabel.models.scaling import scaling_problem
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.stitch._halo import halo_size
from geolabel.uncertainty.sinks import describe_output

__all__ = [
    "Progress",
    "RunResult",
    "SceneDirs",
    "SceneResult",
    "plan_scene",
    "run_predict",
]

logger = logging.getLogger(__name__)

#: ``progress(scene_name, tiles_done, tiles_total)``
Progress = Callable[[str, int, int], None]

GDAL_ENV = {
    "GDAL_CACHEMAX": 64,
    "GDAL_NUM_THREADS": 1,
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}


@dataclass(slots=True)
class SceneResult:
    """Outcome of one scene."""

    scene: str
    status: str  # "done" | "failed" | "incomplete"
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    tiles: int = 0
    tiles_run: int = 0
    failed_tiles: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RunResult:
    """Outcome of a run; ``ok`` when every scene is done."""

    out: Path
    scenes: list[SceneResult]
    run_json: Path

    @property
    def ok(self) -> bool:
        """True when every scene finished."""
        return all(s.status == "done" for s in self.scenes)


def resolve_bands(
    scene: Scene, spec: ModelSpec, bands: tuple[int, ...] | None
) -> tuple[int, ...]:
    """Band indexes for the model: explicit, the spec's, by name, or all if counts match.

    Raises:
        SceneReadError: the scene's bands cannot be matched to the model's.
    """
    want = spec.input.bands
    if bands is not None:
        sel = bands
    elif spec.input.band_indexes is not None:
        sel = spec.input.band_indexes
    elif all(n is not None for n in scene.band_names) and set(want) <= set(
        scene.band_names
    ):
        sel = tuple(scene.bands[scene.band_names.index(b)] for b in want)
    elif len(scene.bands) == len(want):
        sel = scene.bands
    else:
        raise SceneReadError(
            f"{scene.path}: has {len(scene.bands)} bands, model {spec.model_id} wants "
            f"{len(want)} ({', '.join(want)}); choose them with --bands"
        )
    if len(sel) != len(want):
        raise SceneReadError(
            f"{scene.path}: --bands gives {len(sel)} bands, model wants {len(want)}"
        )
    return tuple(sel)


def open_model_scene(
    path: str | Path,
    spec: ModelSpec,
    *,
    bands: tuple[int, ...] | None = None,
    nodata: float | None = None,
    allow_vrt: bool = False,
    allow_pixel_space: bool = False,
    limits: SceneLimits | None = None,
    allow_remote: tuple[str, ...] = (),
    stac_resample: Resampling | None = None,
) -> Scene:
    """Open a scene with the bands ``spec`` needs (:func:`resolve_bands`), in model order.

    The file is opened once to learn its bands, then with the chosen ones (nodata and
    mask handling depend on them). A STAC item gives the spec's bands, by name.

    Raises:
        SceneReadError: see :func:`~geolabel.io.scene.open_scene`; bands that do not fit.
    """
    kw: dict[str, Any] = {
        "nodata": nodata,
        "allow_vrt": allow_vrt,
        "allow_pixel_space": allow_pixel_space,
        "limits": limits,
        "allow_remote": allow_remote,
        "stac_resample": stac_resample,
        "band_names": spec.input.bands,
    }
    base = open_scene(path, **kw)
    return open_scene(path, bands=resolve_bands(base, spec, bands), **kw)


def open_run_scene(path: str | Path, spec: ModelSpec, config: RunConfig) -> Scene:
    """:func:`open_model_scene` with a run's ``--bands``/``--nodata``/``--allow-*``."""
    return open_model_scene(
        path,
        spec,
        bands=config.bands,
        nodata=config.nodata,
        allow_vrt=config.allow_vrt,
        allow_pixel_space=config.allow_pixel_space,
        limits=config.scene_limits(),
        allow_remote=config.allow_remote,
        stac_resample=config.stac_resample,
    )


def plan_scene(
    scene: Scene, spec: ModelSpec, config: RunConfig
) -> tuple[TileGrid, int]:
    """The tile grid and dead zone for a scene.

    Raises:
        ResourceLimitError: more tiles than the run's ``tiles`` limit.
    """
    tile = config.tile_size or spec.input.tile_size
    overlap = spec.default_overlap() if config.overlap is None else config.overlap
    grid = TileGrid(scene.grid, tile, overlap)
    check_tiles(scene.path, len(grid), config.scene_limits())
    if config.dead_zone is not None:
        dead = min(config.dead_zone, overlap)
    elif spec.receptive_field is not None:
        dead = min(overlap, math.ceil(spec.receptive_field / 2))
    else:
        dead = overlap // 2
    return grid, dead


def warn_input_scaling(scene: Scene, grid: TileGrid, spec: ModelSpec) -> None:
    """Warn (:class:`InputScalingWarning`) when the central tile, normalised as the
    spec says, looks wrong for the model (see ``models/scaling.py``)."""
    rows, cols = grid.shape
    tile = grid[rows // 2, cols // 2]
    try:
        read = scene.read(tile.read_window)
    except SceneReadError:
        return  # the tile loop records the failure where it happens
    problem = scaling_problem(read.data, read.valid, spec)
    if problem is not None:
        warnings.warn(f"{scene.path}: {problem}", InputScalingWarning, stacklevel=2)


def finalize_settings(config: RunConfig) -> dict[str, Any]:
    """The settings only finalize reads (not in the run token)."""
    keys = ("compress", "probabilities", "vectors", "uncertainty")
    return {k: getattr(config, k) for k in keys}


def run_scene(
    path: str,
    spec: ModelSpec,
    model_factory: Callable[[], ModelBackend],
    config: RunConfig,
    out: Path,
    names: SceneDirs,
    progress: Progress | None,
    *,
    executor: BatchExecutor | None = None,
) -> SceneResult:
    """Run one scene end to end; errors are captured in the result.

    ``executor`` runs the batches (default: in this process); with ``config.shard``
    only the shard's share of the batches runs and the scene is not finalized.
    """
    from geolabel.finalize import finalize_scene

    res = SceneResult(scene=str(path), status="failed")
    t_start = time.perf_counter()
    limits = config.scene_limits()
    deadline = limits.deadline()
    try:
        scene = open_run_scene(path, spec, config)
        grid, dead = plan_scene(scene, spec, config)
        warn_input_scaling(scene, grid, spec)
        sdir = names.folder(scene)
        res.info.update(scene.provenance)
        if (
            spec.task != "segmentation"
        ):  # detection / classification: geolabel.detect_pipeline
            from geolabel.detect_pipeline import run_object_scene

            return run_object_scene(
                scene, grid, spec, model_factory, config, sdir, progress, res
            )
        token = config.output_token(
            grid=grid.token,
            model=spec.model_id,
            weights=spec.weights_sha256(),
            bands=scene.bands,
            dead=dead,
        )
        res.tiles = len(grid)
        res.info = {
            "grid": grid.token,
            "tile_size": grid.tile_shape,
            "overlap": grid.overlap,
            "dead_zone": dead,
            "bands": list(scene.bands),
            "nodata": scene.nodata,
            "nodata_source": scene.nodata_source,
            "tiles_shape": list(grid.shape),
            "dir": str(sdir),
            **scene.provenance,
        }
        settings = finalize_settings(config)
        finished = None if config.overwrite else read_finished(sdir, token, settings)
        if finished is not None:  # a finished scene's outputs are not rewritten
            res.outputs, res.status = finished, "done"
            res.info["reused"] = True
            return res
        if config.overwrite and sdir.exists():
            shutil.rmtree(sdir)
        sdir.mkdir(parents=True, exist_ok=True)
        store = RunStore(
            sdir / "store.zarr",
            grid,
            spec.num_classes + len(extra_channels(spec, config)),
            halo_size(grid),
            token,
        )
        state = read_manifest(sdir / "manifest")
        # tiles recorded done whose store chunks were damaged since are redone
        damaged = set(
            store.damaged_tiles(
                [t for t in grid if state.get(t.id, {}).get("status") == "done"]
            )
        )
        if damaged:
            logger.warning(
                "%s: %d damaged store chunks; recomputing their tiles",
                scene.path,
                len(damaged),
            )
            for tile_id in damaged:
                state[tile_id] = {"status": "damaged"}
        pending = {
            t.id
            for t in grid
            if state.get(t.id, {}).get("status") != "done"
            and (config.retry_failed or state.get(t.id, {}).get("status") != "failed")
        }
        own = shard_batches(batches_of(grid, config.batch_size), config.shard)
        batches = [b for b in own if any(t.id in pending for t in b)]
        done_before = len(grid) - len(
            {t.id for t in grid if state.get(t.id, {}).get("status") != "done"}
        )
        count = [done_before]

        def tick(n: int) -> None:
            count[0] += n
            if progress is not None:
                progress(scene.name, count[0], len(grid))
            check_time(scene.path, deadline, limits)  # after the batch is recorded

        if progress is not None:
            progress(scene.name, done_before, len(grid))
        if batches:
            run = executor if executor is not None else LocalExecutor(model_factory)
            with Manifest(
                sdir / "manifest", writer=writer_name(config.shard)
            ) as manifest:
                res.timings.update(
                    run.run(scene, grid, spec, store, manifest, batches, dead, tick)
                )
        res.tiles_run = sum(len(b) for b in batches)
        state = read_manifest(sdir / "manifest")
        res.failed_tiles = sorted(
            t.id for t in grid if state.get(t.id, {}).get("status") == "failed"
        )
        missing = [
            t.id for b in own for t in b if state.get(t.id, {}).get("status") != "done"
        ]
        if missing:
            res.status = "incomplete"
            first = (
                state.get(res.failed_tiles[0], {}).get("error")
                if res.failed_tiles
                else None
            )
            if first:  # the line names the scene once
                first = first.replace(f"{scene.path}: ", "")
            res.error = (
                f"{len(missing)} of {len(grid)} tiles not done "
                f"({len(res.failed_tiles)} failed{': ' + first if first else ''}); "
                "re-run with --retry-failed"
            )
            return res
        if config.shard is not None:
            res.status = (
                "done"  # this shard's share; `geolabel finalize` writes the outputs
            )
            return res
        t0 = time.perf_counter()
        res.outputs = finalize_scene(
            scene, grid, spec, store, sdir, config, run_id=token
        )
        write_finished(sdir, token, settings, res.outputs)
        res.timings["finalize"] = time.perf_counter() - t0
        res.status = "done"
    except (GeolabelError, OSError) as err:  # OSError: disk full, read-only, GDAL
        res.error = describe_error(err)
        if not isinstance(err, GeolabelError) and err.errno is None:
            # GDAL's write errors do not say why: ask the folder
            problem = disk_problem(out / Path(str(path)).stem)
            if problem is not None:
                res.error = f"{res.error} ({problem})"
        logger.debug("scene %s failed:\n%s", path, traceback.format_exc())
    finally:
        res.timings["total"] = time.perf_counter() - t_start
    return res


def _versions() -> dict[str, str]:
    import dask
    import numpy
    import zarr

    v = {
        "geolabel": __version__,
        "numpy": numpy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "zarr": zarr.__version__,
        "dask": str(getattr(dask, "__version__", "")),
    }
    from importlib.metadata import PackageNotFoundError, version

    for dist in (
        "torch",
        "onnxruntime",
    ):  # metadata only: importing torch takes seconds
        with contextlib.suppress(PackageNotFoundError):
            v[dist] = version(dist)
    return v


def load_run_model(spec: ModelSpec, config: RunConfig) -> ModelBackend:
    """The model of a run as the pipeline uses it (distributed workers load it so too)."""
    precision = config.precision
    if (
        precision == "auto"
    ):  # checked against fp32 once per run folder (models/precision.py)
        from geolabel.models.precision import resolve_precision

        precision = resolve_precision(spec, config)["precision"]
    return wrap_backend(
        load_model(
            spec, device=config.device, precision=precision, threads=config.threads
        ),
        config,
    )


def run_predict(
    config: RunConfig,
    *,
    progress: Progress | None = None,
    model: ModelBackend | None = None,
) -> RunResult:
    """Run a model over scenes; see :class:`RunConfig`.

    Raises:
        ModelSpecError: the model spec or its weights are invalid (nothing is made).
        BackendError: the model cannot be loaded (nothing is made).
        ConfigError: a ``tile_size`` the model cannot take, a bad limit.
        OutputExistsError: ``out`` holds a different run and ``overwrite`` is off.
    """
    spec = model.spec if model is not None else load_spec(config.model)
    config.scene_limits()  # a bad --limit fails before anything is made
    if model is None:  # a bad model fails before anything is made
        preflight_model(spec, tile_size=config.tile_size)
    else:
        check_tile_size(spec, config.tile_size)
    out = Path(config.out)
    previous = {} if config.overwrite else read_record(out, missing_ok=True)
    recorded = previous.get("model", {}).get("id")
    if previous and recorded != spec.model_id:
        raise OutputExistsError(
            f"{out}: holds a run of model {recorded!r}; "
            "choose another --out or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    # one writer per run folder (shards share theirs by design)
    lock = run_folder_lock(out) if config.shard is None else contextlib.nullcontext()
    with lock:
        return _run_scenes(config, spec, out, previous, model, progress)


def _run_scenes(
    config: RunConfig,
    spec: ModelSpec,
    out: Path,
    previous: dict[str, Any],
    model: ModelBackend | None,
    progress: Progress | None,
) -> RunResult:
    """The body of :func:`run_predict` once the run folder is made and locked
    (``previous``: the run record found there, empty for a new run)."""
    run_json = out / "run.json"
    if config.shard is not None:
        begin_shard(
            out,
            config.shard,
            config.to_dict(),
            {"id": spec.model_id, "spec": spec.source},
        )
    loaded: list[ModelBackend] = (
        [wrap_backend(model, config)] if model is not None else []
    )

    def factory() -> ModelBackend:
        if not loaded:
            loaded.append(load_run_model(spec, config))
        return loaded[0]

    t0 = time.perf_counter()
    results: list[SceneResult] = []
    names = SceneDirs.from_record(out, previous)
    with (
        rasterio.Env(**GDAL_ENV),
        open_executor(
            config, factory, in_process_model=model is not None, task=spec.task
        ) as ex,
    ):
        results.extend(
            run_scene(path, spec, factory, config, out, names, progress, executor=ex)
            for path in config.scenes
        )
    if (
        config.shard is None
        and run_json.exists()
        and all(r.info.get("reused") for r in results)
    ):  # every scene was finished before: the run's files stay as they are
        for m in loaded:
            m.close()
        return RunResult(out, results, run_json)
    from geolabel.qgis import record_project, style_unstyled

    # Outside GDAL_ENV on purpose: its decimated reads of the input scene thrash a 64 MB block
    # cache (minutes per band); GDAL's default cache (5 % of RAM) makes them fast but is what
    # grows peak RSS with the scene (see benchmarks/README.md).
    styles = [] if config.shard is not None else style_unstyled(results, spec)
    doc: dict[str, Any] = {
        "geolabel": __version__,
        "paths": "relative to the run folder",
        "config": config.to_dict(),
        "model": {
            "id": spec.model_id,
            "spec": spec.source,
            "weights_sha256": spec.weights_sha256(),
            "task": spec.task,
            "classes": list(spec.class_names),
            "labels": list(spec.labels()),
        },
        "versions": _versions(),
        "precision": precision_record(config),
        "timings": {"total_seconds": round(time.perf_counter() - t0, 3)},
        "scenes": [
            {
                "scene": r.scene,
                "status": r.status,
                "error": r.error,
                "tiles": r.tiles,
                "tiles_run": r.tiles_run,
                "failed_tiles": r.failed_tiles,
                "timings": {k: round(v, 3) for k, v in r.timings.items()},
                **r.info,
            }
            for r in results
        ],
        "outputs": [
            {"scene": r.scene, "role": role, "path": p, **describe_output(role, p)}
            for r in results
            for role, p in r.outputs.items()
        ]
        + styles,
    }
    if (
        config.shard is not None
    ):  # shards never race on run.json: `geolabel finalize` writes it
        run_json = write_shard_status(out, config.shard, doc)
    else:
        doc = merge_records(out, previous, doc)
        doc["outputs"] += record_project(out, doc, spec)
        run_json = write_record(out, doc)
    for m in loaded:
        m.close()
    return RunResult(out, results, run_json)


def iter_tiles(grid: TileGrid) -> Iterator[Tile]:
    """Tiles in row-major order (the order finalize and the manifest use)."""
    return iter(grid)
