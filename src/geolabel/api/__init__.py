"""geolabel's Python API: the CLI's commands as functions that return data.

``predict`` runs a model over files, URLs, STAC items or :class:`xarray.DataArray` s and
returns a :class:`Run`, whose :meth:`Run.to_dataset` opens a scene's outputs as a lazy
:class:`xarray.Dataset`; ``open_run`` reads an existing run folder; ``prioritize``,
``accept``, ``train`` and ``evaluate`` return GeoDataFrames, counts, the trained model
and scores. Every name here is also exported by :mod:`geolabel`.
"""

from __future__ import annotations

from geolabel.api._loop import LabelSource, accept, evaluate, prioritize, train
from geolabel.api._predict import SceneInput, predict, write_dataarray
from geolabel.api._run import Run, SceneRun, open_run

__all__ = [
    "LabelSource",
    "Run",
    "SceneInput",
    "SceneRun",
    "accept",
    "evaluate",
    "open_run",
    "predict",
    "prioritize",
    "train",
    "write_dataarray",
]
