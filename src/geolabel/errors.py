"""Every exception and warning class of geolabel.

Each error subclasses :class:`GeolabelError` and, where one fits, a builtin, so that
callers can catch either (the rasterio convention).
"""

from __future__ import annotations

import errno
import os

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
    "InputScalingWarning",
    "MissingDependencyError",
    "ModelOutputError",
    "ModelSpecError",
    "NodataWarning",
    "OutputExistsError",
    "RemoteModelError",
    "RemoteNotAllowedError",
    "ResourceLimitError",
    "RunStateError",
    "SceneReadError",
    "describe_error",
    "innermost_cause",
]


class GeolabelError(Exception):
    """Root of every geolabel error."""


class GridError(GeolabelError, ValueError):
    """A scene or tile grid is invalid (bad shape, transform or tile size)."""


class CRSMismatchError(GridError):
    """Two grids or files that must share a CRS do not."""


class SceneReadError(GeolabelError, OSError):
    """A scene cannot be opened, validated or georeferenced."""


class RemoteNotAllowedError(SceneReadError, PermissionError):
    """A remote scene's host (or bucket) is not on the ``--allow-remote`` allowlist."""


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


class InputScalingWarning(GeolabelWarning):
    """A scene's values, normalised as the spec says, look wrong for the model."""


class BackendLoadWarning(GeolabelWarning):
    """A backend could not be loaded and was left out of the registry."""


class ExperimentalWarning(GeolabelWarning):
    """The feature is experimental and may change."""


#: errno values a user must recognise at once, named as the issue reports them.
_ERRNO_NAMES = {
    errno.ENOSPC: "no space left on device (ENOSPC); free space or choose another --out",
    errno.EROFS: "read-only file system (EROFS); choose a writable --out",
    errno.EDQUOT: "disk quota exceeded (EDQUOT)",
    errno.EACCES: "permission denied (EACCES)",
    errno.EFBIG: "file too large for the file system or the process limit (EFBIG)",
}


def innermost_cause(err: BaseException) -> str:
    """The first line of the innermost useful message of an error chain.

    rasterio raises "Read failed. See previous exception for details." and chains
    GDAL's own error (``CPLE_*``) as the cause; this returns GDAL's message.
    """
    text = str(err).strip()
    msg = text.splitlines()[0] if text else type(err).__name__
    cause, depth = err.__cause__ or err.__context__, 0
    while cause is not None and depth < 8:
        text = str(cause).strip()
        if text and "previous exception" not in text:
            msg = text.splitlines()[0]
        cause, depth = cause.__cause__ or cause.__context__, depth + 1
    return msg


def describe_error(err: BaseException) -> str:
    """One line for any error a run can meet: geolabel's message as it is, an OS
    error as ``PATH: what`` with ENOSPC/EROFS named, GDAL's own cause for rasterio.
    """
    if isinstance(err, GeolabelError):
        return " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError):
        code = err.errno
        chain: BaseException | None = err
        while code is None and chain is not None:  # GDAL wraps the OS error
            code = getattr(chain, "errno", None)
            chain = chain.__cause__ or chain.__context__
        what = _ERRNO_NAMES.get(code or -1) or (
            err.strerror if err.strerror else innermost_cause(err)
        )
        if code is None:
            cause = innermost_cause(err).lower()
            for num in (errno.ENOSPC, errno.EROFS):
                if os.strerror(num).lower() in cause:
                    what = _ERRNO_NAMES[num]
        where = err.filename if err.filename is not None else None
        return f"{where}: {what}" if where else what
    if isinstance(err, MemoryError):
        return f"out of memory ({type(err).__name__}: {err})"
    return f"{type(err).__name__}: {innermost_cause(err)}"
