"""geolabel: label large geospatial rasters with the help of models.

The grid objects are imported at once; the Python API (``predict``, ``open_run``,
``prioritize``, ``accept``, ``train``, ``evaluate``, ``open_scene``...) is imported on
first use, so ``import geolabel`` stays light (no torch, no dask graph machinery).

Examples:
    >>> import geolabel
    >>> sorted(set(geolabel.__all__) - {"__version__"})[:4]
    ['EdgePolicy', 'FitConfig', 'ModelSpec', 'Run']
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from geolabel.grid import EdgePolicy, SceneGrid, Tile, TileGrid, Window  # noqa: E402

if TYPE_CHECKING:
    from geolabel.api import (
        Run,
        SceneRun,
        accept,
        evaluate,
        open_run,
        predict,
        prioritize,
        train,
    )
    from geolabel.io.scene import Scene, open_scene
    from geolabel.models.spec import ModelSpec, load_spec
    from geolabel.train import FitConfig

#: Lazily imported public names -> their module.
_LAZY = {
    "FitConfig": "geolabel.train",
    "ModelSpec": "geolabel.models.spec",
    "Run": "geolabel.api",
    "Scene": "geolabel.io.scene",
    "SceneRun": "geolabel.api",
    "accept": "geolabel.api",
    "evaluate": "geolabel.api",
    "load_spec": "geolabel.models.spec",
    "open_run": "geolabel.api",
    "open_scene": "geolabel.io.scene",
    "predict": "geolabel.api",
    "prioritize": "geolabel.api",
    "train": "geolabel.api",
}

__all__ = [
    "EdgePolicy",
    "FitConfig",
    "ModelSpec",
    "Run",
    "Scene",
    "SceneGrid",
    "SceneRun",
    "Tile",
    "TileGrid",
    "Window",
    "__version__",
    "accept",
    "evaluate",
    "load_spec",
    "open_run",
    "open_scene",
    "predict",
    "prioritize",
    "train",
]


def __getattr__(name: str) -> Any:
    """Import the API names on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'geolabel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, lazy ones included."""
    return sorted(set(globals()) | set(__all__))
