"""Option helpers shared by ``accept``, ``train``, ``evaluate`` and ``simulate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["LayerPath", "parse_layer_path"]


def parse_layer_path(value: str) -> tuple[str, str | None]:
    """``PATH`` or ``PATH:LAYER`` (the split is at the last ``:`` if PATH exists)."""
    if Path(value).exists() or ":" not in value:
        return value, None
    path, _, layer = value.rpartition(":")
    return path, layer or None


class LayerPath(click.ParamType):  # type: ignore[type-arg]
    """A vector file, optionally ``:LAYER`` (``labels.gpkg:points``)."""

    name = "path[:layer]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str | None]:
        """Split and check that the file exists."""
        if isinstance(value, tuple):
            return value
        path, layer = parse_layer_path(str(value))
        if not Path(path).exists():
            self.fail(f"{path!r}: no such file", param, ctx)
        return path, layer
