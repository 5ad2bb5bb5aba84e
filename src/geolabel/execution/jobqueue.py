"""dask-jobqueue clusters that geolabel starts (SLURM, PBS) from a YAML file.

``--cluster slurm:configs/cluster/slurm.yaml`` (or ``pbs:...``) reads the file, starts a
``dask_jobqueue.SLURMCluster``/``PBSCluster`` with its cores, memory, walltime, queue,
account and extra directives, submits ``jobs`` worker jobs (or scales adaptively) and
waits until the first worker has joined. Unknown keys are refused, so a typo does not
silently drop a directive.

Worker jobs still pending after ``pending_warning_s`` get one warning with the
scheduler's reason (``squeue %r``, e.g. ``Resources``: the node is smaller than a job
asks). The jobs geolabel submitted are cancelled (``scancel``/``qdel``) whenever the
run stops: normally, on an error, on Ctrl-C, at interpreter exit and on the hard exit
after SIGTERM (:data:`geolabel.execution.preempt.EXIT_HOOKS`).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geolabel.errors import ConfigError, MissingDependencyError
from geolabel.execution.preempt import EXIT_HOOKS

__all__ = [
    "AdaptSettings",
    "JobqueueSettings",
    "cancel_jobs",
    "job_ids",
    "load_jobqueue_settings",
    "pending_reasons",
    "start_jobqueue_cluster",
    "stop_jobqueue_cluster",
]

logger = logging.getLogger(__name__)

Kind = Literal["slurm", "pbs"]

#: The scheduler command that cancels jobs by id.
CANCEL_COMMAND = {"slurm": "scancel", "pbs": "qdel"}
#: Cancel hooks of the clusters this process started (``id(cluster) -> hook``).
_CANCEL_HOOKS: dict[int, Callable[[], None]] = {}


class AdaptSettings(BaseModel):
    """Adaptive scaling bounds (worker jobs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minimum_jobs: int = Field(default=0, ge=0)
    maximum_jobs: int = Field(default=4, ge=1)


class JobqueueSettings(BaseModel):
    """The YAML of a jobqueue cluster (keys as in dask-jobqueue, plus ``jobs``).

    ``cores``/``memory``/``processes`` describe ONE worker job; ``jobs`` is how many to
    submit (ignored when ``adapt`` is given); ``wait_timeout_s`` bounds the wait for
    the first worker (queues can be slow); after ``pending_warning_s`` without one, a
    warning says why the jobs wait.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: int = Field(default=1, ge=1)
    adapt: AdaptSettings | None = None
    cores: int = Field(ge=1)
    memory: str = Field(min_length=1)
    processes: int = Field(default=1, ge=1)
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    job_name: str = "geolabel-worker"
    job_extra_directives: list[str] = Field(default_factory=list)
    job_directives_skip: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    resource_spec: str | None = None
    interface: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    python: str | None = None
    death_timeout: float | None = None
    scheduler_options: dict[str, Any] = Field(default_factory=dict)
    wait_timeout_s: float = Field(default=600.0, gt=0)
    pending_warning_s: float = Field(default=120.0, gt=0)

    def cluster_kwargs(self, kind: Kind) -> dict[str, Any]:
        """Keyword arguments of the dask-jobqueue cluster class."""
        skip = {"jobs", "adapt", "wait_timeout_s", "pending_warning_s"}
        if kind != "pbs":
            skip.add("resource_spec")
        return {
            k: v
            for k, v in self.model_dump().items()
            if k not in skip and v not in (None, [], {})
        }


def load_jobqueue_settings(path: str | Path) -> JobqueueSettings:
    """Read and validate a jobqueue YAML file.

    Raises:
        ConfigError: missing file, bad YAML or unknown/invalid keys (named).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--cluster: {p}: cluster config not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"--cluster: {p}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"--cluster: {p}: a cluster config must be a YAML mapping")
    try:
        return JobqueueSettings.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'config'}: {e['msg']}"
            for e in err.errors()
        )
        raise ConfigError(f"--cluster: {p}: {problems}") from err


def job_ids(cluster: Any) -> list[str]:
    """Scheduler ids of the worker jobs ``cluster`` has submitted (so far)."""
    jobs = getattr(cluster, "workers", None) or {}
    ids = (getattr(job, "job_id", None) for job in list(jobs.values()))
    return [str(i) for i in ids if i]


def _run(cmd: list[str]) -> str | None:
    """stdout of a scheduler command, or ``None`` when it fails or is missing."""
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as err:
        logger.debug("%s failed: %s", cmd[0], err)
        return None
    return done.stdout if done.returncode == 0 else None


def cancel_jobs(kind: Kind, ids: list[str]) -> None:
    """Cancel jobs by id (``scancel``/``qdel``); jobs already gone are no error."""
    if ids:
        logger.info("cancelling %s jobs %s", kind, " ".join(ids))
        _run([CANCEL_COMMAND[kind], *ids])


def pending_reasons(kind: Kind, ids: list[str]) -> str:
    """Why the jobs wait, as the scheduler says (SLURM ``squeue``): ``""`` if unknown."""
    if kind != "slurm" or not ids:
        return ""
    out = _run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T %r"])
    return "; ".join(ln.strip() for ln in (out or "").splitlines() if ln.strip())


def _wait_for_first_worker(
    kind: Kind, path: str | Path, settings: JobqueueSettings, cluster: Any, client: Any
) -> None:
    """Wait for one worker; warn once after ``pending_warning_s`` with the reason.

    Raises:
        ConfigError: no worker within ``wait_timeout_s``.
    """
    deadline = time.monotonic() + settings.wait_timeout_s
    warned = False
    while True:
        left = deadline - time.monotonic()
        step = left if warned else min(left, settings.pending_warning_s)
        try:
            client.wait_for_workers(1, timeout=max(step, 0.001))
            return
        except TimeoutError as err:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"--cluster {kind}:{path}: no worker joined within "
                    f"{settings.wait_timeout_s:g} s (check the queue, account and "
                    "the worker job logs)"
                ) from err
        if not warned:
            warned = True
            ids = job_ids(cluster)
            reason = pending_reasons(kind, ids)
            logger.warning(
                "--cluster %s:%s: no worker job has started after %g s (%s); each job "
                "asks for %d cores and %s: if the nodes are smaller, lower cores/"
                "memory in %s; waiting up to wait_timeout_s=%g s",
                kind,
                path,
                settings.pending_warning_s,
                reason or f"jobs {' '.join(ids) or 'not yet submitted'}",
                settings.cores,
                settings.memory,
                path,
                settings.wait_timeout_s,
            )


def stop_jobqueue_cluster(kind: Kind, cluster: Any, client: Any) -> None:
    """Close the client and cluster and cancel every job the cluster submitted."""
    ids = job_ids(cluster)
    try:
        client.close()
        cluster.close()
    finally:
        cancel_jobs(kind, ids)
        hook = _CANCEL_HOOKS.pop(id(cluster), None)
        if hook is not None:
            atexit.unregister(hook)
            with contextlib.suppress(ValueError):
                EXIT_HOOKS.remove(hook)


def start_jobqueue_cluster(kind: Kind, path: str | Path) -> tuple[Any, Any]:
    """Start the cluster described by ``path``; returns ``(cluster, client)``.

    The caller closes both. Waits until at least one worker has joined (unless the
    cluster scales adaptively from zero jobs).

    Raises:
        ConfigError: a bad config, or no worker joined within ``wait_timeout_s``.
        MissingDependencyError: dask-jobqueue is not installed.
    """
    settings = load_jobqueue_settings(path)
    try:  # untyped packages: used as Any
        jobqueue: Any = importlib.import_module("dask_jobqueue")
        dist: Any = importlib.import_module("distributed")
    except ImportError as err:
        raise MissingDependencyError("dask-jobqueue", "cluster") from err
    cls = jobqueue.SLURMCluster if kind == "slurm" else jobqueue.PBSCluster
    try:
        cluster = cls(**settings.cluster_kwargs(kind))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"--cluster {kind}:{path}: {err}") from err
    logger.info("jobqueue worker job script:\n%s", cluster.job_script())
    if settings.adapt is not None:
        cluster.adapt(
            minimum_jobs=settings.adapt.minimum_jobs,
            maximum_jobs=settings.adapt.maximum_jobs,
        )
    else:
        cluster.scale(jobs=settings.jobs)
    client = dist.Client(cluster)

    def cancel() -> None:  # at interpreter exit, or the hard exit after SIGTERM
        cancel_jobs(kind, job_ids(cluster))

    _CANCEL_HOOKS[id(cluster)] = cancel
    atexit.register(cancel)
    EXIT_HOOKS.append(cancel)
    if settings.adapt is not None and settings.adapt.minimum_jobs == 0:
        return cluster, client  # adaptive from zero: workers come when tasks do
    try:
        _wait_for_first_worker(kind, path, settings, cluster, client)
    except BaseException:
        stop_jobqueue_cluster(kind, cluster, client)
        raise
    return cluster, client
