"""One scene, any task: plan, run the pending batches, finalise.

:func:`run_scene` is the one scene runner of ``geolabel predict``. Every task goes
through the same steps; only the task strategy (:mod:`geolabel.tasks`) differs:

1. open the scene with the model's bands and plan its tile grid
   (:mod:`geolabel.execution.plan`);
2. reuse the outputs of a scene finished with the same token and settings;
3. open the task's sink, mark done tiles whose data was lost as damaged, and take the
   batches of this run's shard that still have pending tiles (:class:`TilePlan`);
4. run them on the executor (in process, dask, SLURM; stopping between batches on
   SIGTERM and on an open circuit breaker), each tile recorded done in the manifest
   only after its data is durable; an in-process run of a whole scene writes the
   outputs meanwhile (``SceneTask.stream``);
5. when every tile is done (and the run is not a shard) write the outputs.

So every task gets resume, ``--retry-failed``, shards, cluster executors,
preemption, the circuit breaker and ``--tile-size`` from the same code.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolabel.config import RunConfig
from geolabel.errors import GeolabelError, describe_error
from geolabel.execution.executors import BatchExecutor
from geolabel.execution.plan import (
    TilePlan,
    open_run_scene,
    plan_scene,
    warn_input_scaling,
)
from geolabel.execution.shards import writer_name
from geolabel.io.disk import disk_problem
from geolabel.io.finished import (
    check_source,
    read_finished,
    record_source,
    write_finished,
)
from geolabel.io.limits import check_time
from geolabel.io.manifest import Manifest, read_manifest
from geolabel.io.scene_dirs import SceneDirs
from geolabel.models.spec import ModelSpec
from geolabel.tasks import SceneTask, scene_task

__all__ = ["Progress", "SceneResult", "run_scene"]

logger = logging.getLogger(__name__)

#: ``progress(scene_name, tiles_done, tiles_total)``
Progress = Callable[[str, int, int], None]


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
    #: whether the run touched the scene's folder (a scene refused before that, e.g.
    #: by another configuration's store, leaves its earlier record entry standing)
    changed: bool = False


def run_scene(
    path: str,
    spec: ModelSpec,
    config: RunConfig,
    out: Path,
    names: SceneDirs,
    progress: Progress | None,
    *,
    executor: BatchExecutor,
) -> SceneResult:
    """Run one scene end to end; errors are captured in the result.

    ``executor`` runs the batches; with ``config.shard`` only the shard's share of the
    batches runs and the scene is not finalised (``geolabel finalize`` does that).
    """
    res = SceneResult(scene=str(path), status="failed")
    t_start = time.perf_counter()
    try:
        scene = open_run_scene(path, spec, config)
        grid, dead = plan_scene(scene, spec, config)
        warn_input_scaling(scene, grid, spec)
        sdir = names.folder(scene)
        task: SceneTask = scene_task(spec, config, scene, grid, dead, sdir)
        res.tiles = len(grid)
        res.info = task.info()
        settings = task.finalize_settings()
        if not config.overwrite:
            check_source(sdir, scene.path)
        finished = (
            None if config.overwrite else read_finished(sdir, task.token, settings)
        )
        if finished is not None:  # a finished scene's outputs are not rewritten
            res.outputs, res.status = finished, "done"
            res.info["reused"] = True
            return res
        if config.overwrite and sdir.exists():
            res.changed = True
            shutil.rmtree(sdir)
        sdir.mkdir(parents=True, exist_ok=True)
        sink = task.open_sink()
        res.changed = True
        record_source(sdir, scene.path)
        try:
            stream = executor.in_process and config.shard is None
            _run_batches(res, task, sink, config, executor, progress, stream=stream)
            if res.status == "incomplete" or config.shard is not None:
                return res
            t0 = time.perf_counter()
            res.outputs = task.finalize(sink)
        finally:
            task.discard(sink)  # a stream the scene did not use
        write_finished(sdir, task.token, settings, res.outputs)
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


def _run_batches(
    res: SceneResult,
    task: SceneTask,
    sink: Any,
    config: RunConfig,
    executor: BatchExecutor,
    progress: Progress | None,
    *,
    stream: bool,
) -> None:
    """Steps 3 and 4 into the task's open ``sink`` (``stream``: let the task write
    its outputs meanwhile); fills ``res`` (status ``incomplete`` when tiles are
    missing)."""
    scene, grid, spec = task.scene, task.grid, task.spec
    name, scene_path = scene.name, scene.path
    limits = config.scene_limits()
    deadline = limits.deadline()
    manifest_dir = task.sdir / "manifest"
    state = read_manifest(manifest_dir)
    # tiles recorded done whose stored data was damaged since are redone
    done = [t for t in grid if state.get(t.id, {}).get("status") == "done"]
    damaged = task.damaged(sink, done)
    if damaged:
        logger.warning(
            "%s: %d tiles' stored data is damaged; recomputing them",
            scene_path,
            len(damaged),
        )
        for tile_id in damaged:
            state[tile_id] = {"status": "damaged"}
    plan = TilePlan.from_state(grid, state, config)
    count = [plan.done]

    def tick(n: int) -> None:
        count[0] += n
        if progress is not None:
            progress(name, count[0], len(grid))
        check_time(scene_path, deadline, limits)  # after the batch is recorded

    if progress is not None:
        progress(name, count[0], len(grid))
    if plan.batches:
        if stream:
            damaged_ids = set(damaged)
            task.stream(sink, [t for t in done if t.id not in damaged_ids])
        with Manifest(manifest_dir, writer=writer_name(config.shard)) as manifest:
            res.timings.update(
                executor.run(
                    scene, grid, spec, task, sink, manifest, plan.batches, tick
                )
            )
    res.tiles_run = plan.tiles_to_run
    after = TilePlan.from_state(grid, read_manifest(manifest_dir), config)
    res.failed_tiles = after.failed()
    missing = after.missing()
    if missing:
        res.status = "incomplete"
        first = (
            after.state.get(res.failed_tiles[0], {}).get("error")
            if res.failed_tiles
            else None
        )
        if first:  # the line names the scene once
            first = first.replace(f"{scene_path}: ", "")
        res.error = (
            f"{len(missing)} of {len(grid)} tiles not done "
            f"({len(res.failed_tiles)} failed{': ' + first if first else ''}); "
            "re-run with --retry-failed"
        )
    elif config.shard is not None:
        res.status = (
            "done"  # this shard's share; `geolabel finalize` writes the outputs
        )
