"""Execution targets: where a scene's batches run, chosen by one option (``--cluster``).

===============================  ==================================================
``local`` (default)              in this process (the embedded path: read-ahead
                                 thread, one model)
``local:N``                      a ``distributed.LocalCluster`` of N worker processes
``tcp://HOST:PORT``              an existing dask.distributed scheduler
``slurm:FILE`` / ``pbs:FILE``    a dask-jobqueue cluster geolabel starts from YAML
===============================  ==================================================

Distributed targets submit one task per batch (see :mod:`geolabel.execution.worker`).
The driver records a batch's tiles in the manifest only after the task's result (its
writes) has come back, so a lost worker's unfinished batch is rerun by the scheduler
and never recorded twice. Between results the driver checks for preemption.
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from geolabel.config import RunConfig
from geolabel.errors import ConfigError, GeolabelError, MissingDependencyError
from geolabel.execution.jobqueue import start_jobqueue_cluster, stop_jobqueue_cluster
from geolabel.execution.preempt import Preempted, check_preempted, is_preempted
from geolabel.execution.tile_loop import SinkSource, TileSink, run_tiles
from geolabel.execution.worker import BatchJob, BatchOutcome, run_batch
from geolabel.grid import Tile, TileGrid
from geolabel.io.manifest import Manifest
from geolabel.io.scene import Scene
from geolabel.models.base import ModelBackend
from geolabel.models.spec import ModelSpec

__all__ = [
    "BatchExecutor",
    "DistributedExecutor",
    "LocalExecutor",
    "open_executor",
    "parse_cluster",
]

logger = logging.getLogger(__name__)


class BatchExecutor(Protocol):
    """Runs a scene's pending batches into the task's sink and records the manifest.

    ``sink`` is the task's sink opened in this process; ``task`` is its picklable
    recipe, which executors that run batches elsewhere open again there.

    Attributes:
        in_process: the batches' writes go through ``sink`` in this process (so the
            scene's outputs can be written while they run).
    """

    in_process: bool

    def run(
        self,
        scene: Scene,
        grid: TileGrid,
        spec: ModelSpec,
        task: SinkSource,
        sink: TileSink,
        manifest: Manifest,
        batches: list[list[Tile]],
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, float]:
        """Run ``batches``; returns timings (seconds) by stage.

        Raises:
            Preempted: a stop was requested; finished batches are recorded.
        """
        ...


class LocalExecutor:
    """The in-process path (``tile_loop.run_tiles``), stopping between batches on SIGTERM.

    Args:
        model_factory: returns the (lazily loaded, shared) model.
    """

    in_process = True

    def __init__(self, model_factory: Callable[[], ModelBackend]) -> None:
        """Keep the factory; the model loads on the first scene with work."""
        self.model_factory = model_factory

    def run(
        self,
        scene: Scene,
        grid: TileGrid,
        spec: ModelSpec,
        task: SinkSource,
        sink: TileSink,
        manifest: Manifest,
        batches: list[list[Tile]],
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, float]:
        """Run the batches in this process (see :class:`BatchExecutor`)."""
        check_preempted()

        def tick(n: int) -> None:
            if progress is not None:
                progress(n)
            check_preempted()  # after the batch is recorded: nothing durable is lost

        return run_tiles(
            scene,
            grid,
            spec,
            self.model_factory(),
            sink,
            manifest,
            batches,
            tick,
        )


class DistributedExecutor:
    """Batches as tasks on a dask.distributed cluster.

    Args:
        client: a connected ``distributed.Client``.
        config: the run's settings (device, precision, threads).
        poll_s: how often the driver looks for preemption while waiting.
    """

    in_process = False

    def __init__(self, client: Any, config: RunConfig, *, poll_s: float = 0.5) -> None:
        """Keep the client."""
        self.client = client
        self.config = config
        self.poll_s = poll_s

    def run(
        self,
        scene: Scene,
        grid: TileGrid,
        spec: ModelSpec,
        task: SinkSource,
        sink: TileSink,
        manifest: Manifest,
        batches: list[list[Tile]],
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, float]:
        """Submit one task per batch and record each result as it returns."""
        dist: Any = importlib.import_module("distributed")  # untyped: used as Any
        KilledWorker = importlib.import_module("distributed.scheduler").KilledWorker

        check_preempted()
        job = BatchJob(scene=scene, grid=grid, spec=spec, config=self.config, task=task)
        run = uuid.uuid4().hex[:8]
        futures: dict[Any, list[Tile]] = {}
        for k, tiles in enumerate(batches):
            fut = self.client.submit(
                run_batch,
                job,
                tiles,
                key=f"geolabel-batch-{scene.name}-{k:06d}-{run}",
                pure=False,
                priority=-k,
            )
            futures[fut] = tiles
        timings = {"read": 0.0, "model": 0.0, "write": 0.0}
        pending = set(futures)
        try:
            while pending:
                if is_preempted():
                    raise Preempted(
                        "stopped on SIGTERM after recording the finished batches"
                    )
                try:
                    done, pending = dist.wait(
                        pending, timeout=self.poll_s, return_when="FIRST_COMPLETED"
                    )
                except TimeoutError:
                    continue
                for fut in sorted(done, key=lambda f: str(f.key)):
                    try:
                        outcome: BatchOutcome = fut.result()
                    except KilledWorker as err:
                        err_rows = [
                            {
                                "tile_id": t.id,
                                "status": "failed",
                                "error": f"KilledWorker: {err}",
                            }
                            for t in futures[fut]
                        ]
                        manifest.record(err_rows)
                        continue
                    manifest.record(outcome.rows)
                    for key, v in outcome.timings.items():
                        timings[key] = timings.get(key, 0.0) + v
                    if progress is not None:
                        progress(len(futures[fut]))
        finally:
            if pending:
                self.client.cancel(list(pending))
        return timings


def parse_cluster(value: str) -> tuple[str, str]:
    """``--cluster`` -> ``(kind, target)``; kinds: local, localcluster, scheduler, slurm, pbs.

    Raises:
        ConfigError: an unknown form.
    """
    v = value.strip()
    if v in ("", "local"):
        return "local", ""
    if v.startswith("local:"):
        n = v.removeprefix("local:")
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(
                f"--cluster {value!r}: local:N needs a worker count N >= 1"
            )
        return "localcluster", n
    if v.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        return "scheduler", v
    for kind in ("slurm", "pbs"):
        if v.startswith(f"{kind}:"):
            path = v.removeprefix(f"{kind}:")
            if not path:
                raise ConfigError(
                    f"--cluster {value!r}: {kind}: needs a YAML file, e.g. {kind}:configs/cluster/{kind}.yaml"
                )
            return kind, path
    raise ConfigError(
        f"--cluster {value!r}: expected local, local:N, tcp://HOST:PORT, slurm:FILE.yaml or pbs:FILE.yaml"
    )


@contextmanager
def open_executor(
    config: RunConfig,
    model_factory: Callable[[], ModelBackend],
    *,
    in_process_model: bool = False,
) -> Iterator[BatchExecutor]:
    """The executor of ``config.cluster``; closes what it started on exit.

    Args:
        config: the run's settings.
        model_factory: the in-process model (local target only).
        in_process_model: a model object was passed in (it cannot go to workers).

    Raises:
        ConfigError: a bad ``--cluster`` value, an unreachable scheduler, or a model
            object with a distributed target.
        MissingDependencyError: ``distributed``/``dask-jobqueue`` are not installed.
    """
    kind, target = parse_cluster(config.cluster)
    if kind == "local":
        yield LocalExecutor(model_factory)
        return
    if in_process_model:
        raise ConfigError(
            f"--cluster {config.cluster}: workers load the model from its spec; "
            "pass a spec path, not a model object"
        )
    try:
        dist: Any = importlib.import_module("distributed")  # untyped: used as Any
    except ImportError as err:
        raise MissingDependencyError("distributed", "cluster") from err
    cluster: Any = None
    t0 = time.perf_counter()
    if kind == "localcluster":
        cluster = dist.LocalCluster(
            n_workers=int(target),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = dist.Client(cluster)
    elif kind == "scheduler":
        try:
            client = dist.Client(
                target
            )  # waits distributed.comm.timeouts.connect (30 s)
        except (OSError, TimeoutError) as err:
            raise ConfigError(
                f"--cluster {target}: cannot reach the dask scheduler: {err}"
            ) from err
    else:
        cluster, client = start_jobqueue_cluster(kind, target)  # type: ignore[arg-type]
    logger.info("cluster %s ready in %.1f s", config.cluster, time.perf_counter() - t0)
    try:
        yield DistributedExecutor(client, config)
    finally:
        try:
            if kind in ("slurm", "pbs"):  # also cancels the jobs it submitted
                stop_jobqueue_cluster(kind, cluster, client)  # type: ignore[arg-type]
            else:
                client.close()
                if cluster is not None:
                    cluster.close()
        except (
            OSError,
            RuntimeError,
            GeolabelError,
        ) as err:  # closing must not hide the result
            logger.warning("closing the cluster failed: %s", err)
