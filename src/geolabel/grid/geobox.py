"""SceneGrid: the pixel grid (shape + affine + CRS) every output is aligned to."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from affine import Affine
from pyproj import CRS
from pyproj.exceptions import CRSError

from geolabel.errors import GridError
from geolabel.grid._window import Window
from geolabel.types import BBox, Shape2d

__all__ = ["SceneGrid"]


def _is_rotated(transform: Affine) -> bool:
    return transform.b != 0 or transform.d != 0


def _parse_crs(crs: str | None) -> CRS | None:
    """The pyproj CRS of a grid (``None``: pixel space or a CRS pyproj cannot read)."""
    if crs is None:
        return None
    try:
        return CRS.from_user_input(crs)
    except CRSError:
        return None


@dataclass(frozen=True, slots=True)
class SceneGrid:
    """Shape, affine transform and CRS of a scene.

    Args:
        shape: ``(rows, cols)`` in pixels.
        transform: pixel-corner affine (GDAL convention, ``AREA_OR_POINT=Area``).
        crs: the CRS as WKT or ``"EPSG:n"``; ``None`` means pixel space.

    Raises:
        GridError: empty shape, a singular or rotated transform.

    .. versionadded:: 0.1
    """

    shape: Shape2d
    transform: Affine
    crs: str | None

    def __post_init__(self) -> None:
        """Validate the shape and transform."""
        rows, cols = self.shape
        if rows <= 0 or cols <= 0:
            raise GridError(f"scene shape must be positive, got {self.shape!r}")
        object.__setattr__(self, "shape", (int(rows), int(cols)))
        if not isinstance(self.transform, Affine):
            object.__setattr__(self, "transform", Affine(*tuple(self.transform)[:6]))
        if self.transform.determinant == 0:
            raise GridError(f"singular transform {tuple(self.transform)[:6]!r}")
        if _is_rotated(self.transform):
            raise GridError(
                f"rotated or sheared transform {tuple(self.transform)[:6]!r} is not "
                "supported; warp the scene to a north-up grid first (gdalwarp)"
            )

    @property
    def height(self) -> int:
        """Rows."""
        return self.shape[0]

    @property
    def width(self) -> int:
        """Columns."""
        return self.shape[1]

    @property
    def res(self) -> tuple[float, float]:
        """``(x_res, y_res)`` pixel size in CRS units, both positive."""
        return (abs(self.transform.a), abs(self.transform.e))

    def ground_resolution_m(self) -> float | None:
        """Mean pixel side on the ground in metres (``None``: pixel space or an
        unknown unit). Geographic grids use the metres of a degree at their centre.

        Examples:
            >>> SceneGrid((10, 10), Affine(30, 0, 0, 0, -30, 0), "EPSG:32633").ground_resolution_m()
            30.0
        """
        xres, yres = self.res
        if self.is_geographic():
            lat = math.radians((self.bounds[1] + self.bounds[3]) / 2)
            return (xres * 111_320.0 * math.cos(lat) + yres * 110_574.0) / 2
        unit = self.unit_m()
        return None if unit is None else (xres + yres) / 2 * unit

    def is_geographic(self) -> bool:
        """True for a CRS in degrees (longitude/latitude)."""
        crs = _parse_crs(self.crs)
        return crs is not None and crs.is_geographic

    def unit_m(self) -> float | None:
        """Metres per CRS unit of a projected grid: 1.0 for metres, 0.3048006 for US
        survey feet (``None``: pixel space, a geographic CRS or an unknown unit).

        Examples:
            >>> round(SceneGrid((1, 1), Affine(1, 0, 0, 0, -1, 0), "EPSG:2264").unit_m(), 7)
            0.3048006
        """
        crs = _parse_crs(self.crs)
        if crs is None or crs.is_geographic:
            return None
        axes = [a for a in crs.axis_info if a.unit_conversion_factor]
        return float(axes[0].unit_conversion_factor) if axes else None

    def pixel_area_m2(self) -> float | None:
        """Area of one pixel in square metres on a projected grid (``None``: pixel
        space, a geographic CRS, whose pixels differ in area, or an unknown unit)."""
        unit = self.unit_m()
        return None if unit is None else abs(self.transform.determinant) * unit * unit

    @property
    def bounds(self) -> BBox:
        """``(left, bottom, right, top)`` in CRS units (works for south-up grids)."""
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (self.width, self.height)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    @property
    def window(self) -> Window:
        """The full-scene window."""
        return Window(0, 0, *self.shape)

    def window_transform(self, window: Window) -> Affine:
        """Affine of a window's top-left pixel corner."""
        return self.transform @ Affine.translation(window.col_off, window.row_off)

    def crop(self, window: Window) -> SceneGrid:
        """The sub-grid covered by ``window`` (may reach outside the scene)."""
        return SceneGrid(window.shape, self.window_transform(window), self.crs)

    def __getitem__(self, index: tuple[slice, slice]) -> SceneGrid:
        """Slice with ``grid[row_slice, col_slice]`` (steps are not allowed)."""
        rs, cs = index
        r0, r1, rstep = rs.indices(self.height)
        c0, c1, cstep = cs.indices(self.width)
        if rstep != 1 or cstep != 1:
            raise GridError("SceneGrid slices cannot have a step")
        return self.crop(Window(r0, c0, r1 - r0, c1 - c0))

    def xy(self, row: float, col: float) -> tuple[float, float]:
        """CRS ``(x, y)`` of a pixel position (``row + 0.5`` is a pixel centre)."""
        x, y = self.transform @ (col, row)
        return (float(x), float(y))

    def rowcol(self, x: float, y: float) -> tuple[float, float]:
        """Fractional ``(row, col)`` of a CRS coordinate."""
        col, row = ~self.transform @ (x, y)
        return (float(row), float(col))

    def __dask_tokenize__(self) -> Any:
        """Stable dask token (value semantics)."""
        return ("SceneGrid", self.shape, tuple(self.transform)[:6], self.crs)
