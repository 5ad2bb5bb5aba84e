"""dask-jobqueue clusters that geolabel starts (SLURM, PBS) from a YAML file.

``--cluster slurm:configs/cluster/slurm.yaml`` (or ``pbs:...``) reads the file, starts a
``dask_jobqueue.SLURMCluster``/``PBSCluster`` with its cores, memory, walltime, queue,
account and extra directives, submits ``jobs`` worker jobs (or scales adaptively) and
waits until the first worker has joined. Unknown keys are refused, so a typo does not
silently drop a directive.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geolabel.errors import ConfigError, MissingDependencyError

__all__ = [
    "AdaptSettings",
    "JobqueueSettings",
    "load_jobqueue_settings",
    "start_jobqueue_cluster",
]

logger = logging.getLogger(__name__)

Kind = Literal["slurm", "pbs"]


class AdaptSettings(BaseModel):
    """Adaptive scaling bounds (worker jobs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minimum_jobs: int = Field(default=0, ge=0)
    maximum_jobs: int = Field(default=4, ge=1)


class JobqueueSettings(BaseModel):
    """The YAML of a jobqueue cluster (keys as in dask-jobqueue, plus ``jobs``).

    ``cores``/``memory``/``processes`` describe ONE worker job; ``jobs`` is how many to
    submit (ignored when ``adapt`` is given); ``wait_timeout_s`` bounds the wait for
    the first worker (queues can be slow).
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

    def cluster_kwargs(self, kind: Kind) -> dict[str, Any]:
        """Keyword arguments of the dask-jobqueue cluster class."""
        skip = {"jobs", "adapt", "wait_timeout_s"}
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
    if settings.adapt is not None and settings.adapt.minimum_jobs == 0:
        return cluster, client  # adaptive from zero: workers come when tasks do
    try:
        client.wait_for_workers(1, timeout=settings.wait_timeout_s)
    except TimeoutError as err:
        client.close()
        cluster.close()
        raise ConfigError(
            f"--cluster {kind}:{path}: no worker joined within {settings.wait_timeout_s:g} s "
            "(check the queue, account and the worker job logs)"
        ) from err
    return cluster, client
