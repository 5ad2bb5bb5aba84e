"""Model specs and pluggable backends (torch, ONNX; remote ones use the same protocol)."""

from __future__ import annotations

from geolabel.models.base import Batch, ModelBackend, Prediction, normalize
from geolabel.models.registry import get_backend, list_backends, load_model
from geolabel.models.spec import ClassInfo, ModelSpec, load_spec

__all__ = [
    "Batch",
    "ClassInfo",
    "ModelBackend",
    "ModelSpec",
    "Prediction",
    "get_backend",
    "list_backends",
    "load_model",
    "load_spec",
    "normalize",
]
