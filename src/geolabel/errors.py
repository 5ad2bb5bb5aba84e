"""Every exception and warning class of geolabel.

Each error subclasses :class:`GeolabelError` and, where one fits, a builtin, so that
callers can catch either (the rasterio convention).
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendLoadWarning",
    "BackendNotFoundError",
    "CRSMismatchError",
    "CircuitOpenError",
    "ConfigError",
    "ExperimentalWarning",
    "GeolabelError",
    "GeolabelWarning",
    "GridError",
    "MissingDependencyError",
    "ModelOutputError",
    "ModelSpecError",
    "NodataWarning",
    "OutputExistsError",
    "RemoteModelError",
    "ResourceLimitError",
    "RunStateError",
    "SceneReadError",
]


class GeolabelError(Exception):
    """Root of every geolabel error."""


class GridError(GeolabelError, ValueError):
    """A scene or tile grid is invalid (bad shape, transform or tile size)."""


class CRSMismatchError(GridError):
    """Two grids or files that must share a CRS do not."""


class SceneReadError(GeolabelError, OSError):
    """A scene cannot be opened, validated or georeferenced."""


class ConfigError(GeolabelError, ValueError):
    """A run configuration or option value is invalid."""


class ModelSpecError(ConfigError):
    """A model spec (YAML) is invalid or inconsistent with its weights."""


class BackendError(GeolabelError):
    """A model backend failed to load or to run."""


class BackendNotFoundError(BackendError, LookupError):
    """No backend is registered under the requested name."""

    def __init__(self, name: str, available: list[str]) -> None:
        """Build the message from the unknown name and the installed backends."""
        super().__init__(
            f"unknown model backend {name!r}; installed backends: "
            f"{', '.join(sorted(available)) or 'none'} "
            "(torch needs `pip install geolabel[torch]`)"
        )
        self.name = name
        self.available = available


class RemoteModelError(BackendError, OSError):
    """A remote model endpoint failed or answered badly."""


class CircuitOpenError(RemoteModelError):
    """A remote model failed too many batches in a row; the run stops (and can resume).

    ``stops_run`` tells the pipeline to stop the scene after recording the batch.
    """

    stops_run = True


class ModelOutputError(BackendError, ValueError):
    """A model returned output of the wrong shape, dtype or with non-finite values."""


class OutputExistsError(GeolabelError, FileExistsError):
    """An output exists and ``--overwrite`` was not given."""


class MissingDependencyError(GeolabelError, ImportError):
    """An optional dependency is missing; the message names the pip extra."""

    def __init__(self, package: str, extra: str) -> None:
        """Build the message from the missing package and its extra."""
        super().__init__(
            f"{package!r} is not installed; install it with "
            f"`pip install 'geolabel[{extra}]'`"
        )
        self.package = package
        self.extra = extra


class ResourceLimitError(GeolabelError, MemoryError):
    """A request would exceed a configured resource limit."""


class RunStateError(GeolabelError, RuntimeError):
    """A run folder is inconsistent with the requested operation (resume, finalize)."""


class GeolabelWarning(UserWarning):
    """Root of every geolabel warning."""


class NodataWarning(GeolabelWarning):
    """Suspicious or missing nodata information."""


class BackendLoadWarning(GeolabelWarning):
    """A backend could not be loaded and was left out of the registry."""


class ExperimentalWarning(GeolabelWarning):
    """The feature is experimental and may change."""
