"""Type aliases shared across geolabel (axis order is always explicit)."""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = ["BBox", "Index2d", "Shape2d", "TaskKind"]

#: ``(rows, cols)`` — always row-major, pixels.
Shape2d: TypeAlias = tuple[int, int]
#: ``(row, col)`` index of a tile in a tile grid.
Index2d: TypeAlias = tuple[int, int]
#: ``(left, bottom, right, top)`` in CRS units.
BBox: TypeAlias = tuple[float, float, float, float]
TaskKind: TypeAlias = Literal["segmentation", "detection", "classification"]
