"""Public test helpers: synthetic scenes and toy models (numpy only, no torch)."""

from __future__ import annotations

from geolabel.testing.backends import (
    ConvBackend,
    FailingBackend,
    toy_spec,
    write_toy_spec,
)
from geolabel.testing.scenes import make_scene

__all__ = ["ConvBackend", "FailingBackend", "make_scene", "toy_spec", "write_toy_spec"]
