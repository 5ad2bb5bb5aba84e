"""Backend discovery: built-ins plus the ``geolabel.backends`` entry-point group."""

from __future__ import annotations

import importlib
import logging
import warnings
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

from geolabel.errors import BackendLoadWarning, BackendNotFoundError
from geolabel.models.base import ModelBackend
from geolabel.models.spec import ModelSpec

__all__ = ["get_backend", "list_backends", "load_model"]

logger = logging.getLogger(__name__)

#: name -> "module:factory" for the backends geolabel ships.
BUILTIN: dict[str, str] = {
    "torch": "geolabel.models.torch_:TorchBackend",
    "onnx": "geolabel.models.onnx_:OnnxBackend",
    "testing": "geolabel.testing.backends:ConvBackend",
    "testing-squares": "geolabel.testing.detectors:SquareDetector",
    "http": "geolabel.models.http_:HttpBackend",
    "ensemble": "geolabel.models.ensemble:EnsembleBackend",
}


class BackendFactory(Protocol):
    """Builds a backend from a spec and execution options."""

    def __call__(self, spec: ModelSpec, **options: Any) -> ModelBackend: ...


@cache
def _table() -> dict[str, str]:
    table = dict(BUILTIN)
    for ep in entry_points(group="geolabel.backends"):
        if ep.name in table and table[ep.name] != ep.value:
            warnings.warn(
                f"backend {ep.name!r} is registered twice; using {ep.value!r}",
                BackendLoadWarning,
                stacklevel=2,
            )
        table[ep.name] = ep.value
    return table


def list_backends(*, refresh: bool = False) -> dict[str, str]:
    """Registered backends: name -> ``module:factory``."""
    if refresh:
        _table.cache_clear()
    return dict(_table())


def get_backend(name: str) -> BackendFactory:
    """The factory registered under ``name``.

    Raises:
        BackendNotFoundError: unknown name (the message lists installed ones).
    """
    table = _table()
    if name not in table:
        raise BackendNotFoundError(name, list(table))
    module, _, attr = table[name].partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module), attr)
    return factory


def load_model(spec: ModelSpec, **options: Any) -> ModelBackend:
    """Load the backend named by ``spec.backend`` with execution ``options``."""
    return get_backend(spec.backend)(spec, **options)
