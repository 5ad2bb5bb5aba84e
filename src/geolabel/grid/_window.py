"""Pixel windows: ``(row_off, col_off, height, width)``, row-major, half-open."""

from __future__ import annotations

from dataclasses import dataclass

from geolabel.errors import GridError

__all__ = ["Window"]


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A rectangle of pixels, ``rows [row_off, row_off + height)`` and likewise cols.

    Offsets may be negative (a window reaching past the scene's top-left edge).

    .. versionadded:: 0.1
    """

    row_off: int
    col_off: int
    height: int
    width: int

    def __post_init__(self) -> None:
        """Refuse negative sizes."""
        if self.height < 0 or self.width < 0:
            raise GridError(f"window size must be >= 0, got {self.height}x{self.width}")

    @property
    def row_stop(self) -> int:
        """First row past the window."""
        return self.row_off + self.height

    @property
    def col_stop(self) -> int:
        """First column past the window."""
        return self.col_off + self.width

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return (self.height, self.width)

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(row_slice, col_slice)`` for numpy indexing (offsets must be >= 0)."""
        return (
            slice(self.row_off, self.row_stop),
            slice(self.col_off, self.col_stop),
        )

    def intersection(self, other: Window) -> Window:
        """The overlap of two windows (empty windows have zero size)."""
        r0 = max(self.row_off, other.row_off)
        c0 = max(self.col_off, other.col_off)
        r1 = min(self.row_stop, other.row_stop)
        c1 = min(self.col_stop, other.col_stop)
        return Window(r0, c0, max(0, r1 - r0), max(0, c1 - c0))

    def relative_to(self, outer: Window) -> Window:
        """This window with offsets measured from ``outer``'s top-left corner."""
        return Window(
            self.row_off - outer.row_off, self.col_off - outer.col_off, *self.shape
        )

    def to_rasterio(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((row_start, row_stop), (col_start, col_stop))`` for rasterio."""
        return ((self.row_off, self.row_stop), (self.col_off, self.col_stop))
