"""plan -> run -> finalize for ``geolabel predict`` and ``geolabel finalize``.

:func:`run_predict` checks the model, takes the run folder's lock, opens the executor
(``--cluster``) and runs every scene through the one scene runner
(:func:`geolabel.scene_runner.run_scene`, whatever the model's task); a failing scene
is reported and the others go on. It then writes ``run.json`` (or, for a shard, the
shard's status file) and the QGIS styles and project. :func:`finalize_run` finalises a
sharded run once every shard's tiles are done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio

from geolabel import __version__
from geolabel.config import RunConfig
from geolabel.errors import OutputExistsError
from geolabel.execution.executors import open_executor
from geolabel.execution.finalize_run import RunCheck, check_run
from geolabel.execution.model_load import load_run_model
from geolabel.execution.plan import GDAL_ENV, plan_scene
from geolabel.execution.shards import begin_shard, write_shard_status
from geolabel.io.run_record import (
    merge_records,
    read_record,
    record_path,
    scene_key,
    write_record,
)
from geolabel.io.runlock import run_folder_lock
from geolabel.io.scene_dirs import SceneDirs
from geolabel.models.base import ModelBackend
from geolabel.models.ensemble import wrap_backend
from geolabel.models.precision import precision_record
from geolabel.models.preflight import (
    check_tile_overlap,
    check_tile_size,
    preflight_model,
)
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.qgis import record_project, style_unstyled
from geolabel.scene_runner import Progress, SceneResult, run_scene
from geolabel.uncertainty.sinks import describe_output

__all__ = [
    "Progress",
    "RunResult",
    "SceneDirs",
    "SceneResult",
    "finalize_run",
    "plan_scene",
    "run_predict",
]


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
    # a --tile-size/--overlap pair no scene can take: refused before a scene runs
    check_tile_overlap(spec, config.tile_size, config.overlap)
    out = Path(config.out)
    previous = {} if config.overwrite else read_record(out, missing_ok=True)
    recorded = previous.get("model", {}).get("id")
    if previous and recorded != spec.model_id:
        raise OutputExistsError(
            f"{out}: holds a run of model {recorded!r}; "
            "choose another --out or pass --overwrite"
        )
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    # one writer per run folder (shards share theirs by design)
    lock = run_folder_lock(out) if config.shard is None else contextlib.nullcontext()
    with lock:
        result = _run_scenes(config, spec, out, previous, model, progress)
    refused = [r for r in result.scenes if r.status == "failed" and not r.changed]
    if made and config.shard is None and refused and refused == result.scenes:
        # every scene was refused before anything of its own was made: no run folder
        # is left behind holding only the record of the refusals
        shutil.rmtree(out, ignore_errors=True)
    return result


def _kept_entries(out: Path, previous: dict[str, Any], scenes: list[str]) -> set[str]:
    """Those of ``scenes`` (as given) that have an entry in the ``previous`` record."""
    recorded = {scene_key(out, s["scene"]) for s in previous.get("scenes", [])}
    return {s for s in scenes if scene_key(out, record_path(out, s)) in recorded}


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
        open_executor(config, factory, in_process_model=model is not None) as ex,
    ):
        results.extend(
            run_scene(path, spec, config, out, names, progress, executor=ex)
            for path in config.scenes
        )
    # refused before anything of theirs changed (e.g. a store made with another
    # configuration): their earlier record entries, if any, stay as they are
    untouched = [r.scene for r in results if r.status == "failed" and not r.changed]
    kept = _kept_entries(out, previous, untouched)
    if (
        config.shard is None
        and run_json.exists()
        and all(r.info.get("reused") or r.scene in kept for r in results)
    ):  # every scene was finished before or refused: the run's files stay as they are
        for m in loaded:
            m.close()
        return RunResult(out, results, run_json)

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
        "precision": precision_record(config.out, config.precision),
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
        doc = merge_records(out, previous, doc, untouched=untouched)
        doc["outputs"] += record_project(out, doc, spec)
        run_json = write_record(out, doc)
    for m in loaded:
        m.close()
    return RunResult(out, results, run_json)


def finalize_run(
    out: str | Path, *, progress: Progress | None = None
) -> tuple[RunCheck, RunResult | None]:
    """Finalize a sharded run when it is complete.

    Returns:
        ``(check, result)``: ``result`` is the run's :class:`RunResult` (``run.json``
        written), or ``None`` when the run is not ready (nothing is written).

    Raises:
        RunStateError: no (or inconsistent) shard status files.
    """
    config, check = check_run(out)
    if not check.ready:
        return check, None
    final = dataclasses.replace(
        config, out=str(Path(out)), shard=None, cluster="local", overwrite=False
    )
    return check, run_predict(final, progress=progress)
