"""TileGrid and Tile: a scene cut into tiles whose core windows partition it exactly.

A tile owns its *core window*. Its *read window* is the core grown by ``overlap`` pixels
of context on every side (the size a model sees is ``tile_size``). Where that reaches
outside the scene, the :class:`EdgePolicy` decides what is read.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from geolabel.errors import GridError
from geolabel.grid._window import Window
from geolabel.grid.geobox import SceneGrid
from geolabel.types import Index2d, Shape2d

__all__ = ["EdgePolicy", "Tile", "TileGrid", "fit_tile_size"]


class EdgePolicy(enum.Enum):
    """What a read window does where it reaches outside the scene.

    ``SHIFT_INSIDE``: move it inside (the model sees real context; default).
    ``PAD``: keep it in place; the reader pads outside pixels.
    ``CLIP``: clip it to the scene (tiles at the edge are smaller).
    """

    SHIFT_INSIDE = "shift"
    PAD = "pad"
    CLIP = "clip"


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile of a :class:`TileGrid`.

    Attributes:
        index: ``(row, col)`` of the tile in the grid.
        read_window: pixels to read (may reach outside the scene with ``PAD``).
        core_window: pixels this tile owns; the cores of a grid partition the scene.
        context_window: core grown by the overlap and clipped to the scene; blending
            weights are measured from its edges (scene borders are never faded).
        id: stable id ``"{grid_token}/r{row:05d}c{col:05d}"``.

    .. versionadded:: 0.1
    """

    index: Index2d
    read_window: Window
    core_window: Window
    context_window: Window
    id: str
    at_border: tuple[bool, bool, bool, bool] = field(default=(False,) * 4)
    """``(top, bottom, left, right)``: which sides of the context touch the scene edge."""


def _axis(
    length: int, tile: int, overlap: int, edge: EdgePolicy
) -> list[tuple[int, int, int, int]]:
    """Per-axis ``(core0, core1, read0, read1)`` for a scene axis of ``length``."""
    core = tile - 2 * overlap
    out = []
    n = max(1, -(-length // core))
    for i in range(n):
        c0, c1 = i * core, min((i + 1) * core, length)
        r0, r1 = c0 - overlap, c0 - overlap + tile
        if edge is EdgePolicy.SHIFT_INSIDE:
            if length <= tile:
                r0, r1 = 0, length
            elif r0 < 0:
                r0, r1 = 0, tile
            elif r1 > length:
                r0, r1 = length - tile, length
        elif edge is EdgePolicy.CLIP:
            r0, r1 = max(0, r0), min(length, r1)
        out.append((c0, c1, r0, r1))
    return out


def fit_tile_size(length: int, tile: int, overlap: int, multiple: int) -> int:
    """The smallest tile (a multiple of ``multiple``, at most ``tile``) that covers a
    scene axis of ``length`` with as many tiles as ``tile`` needs.

    With a fixed tile the last core is ragged, and the model computes the slack
    twice: 6 tiles of 1024 px (64 px overlap) for 5000 px read 6144 px where 5640
    do. Fully convolutional models take any multiple of their stride, so the cores
    share the axis evenly instead (6 tiles of 976 px instead of 1024 at 5000²: as
    many tiles, 9 % fewer pixels computed). Never below ``4 * overlap`` (the grid's
    minimum).

    Examples:
        >>> fit_tile_size(5000, 1024, 64, 16)
        976
        >>> fit_tile_size(300, 512, 32, 32)  # one tile: the scene and its context
        384
        >>> fit_tile_size(5000, 1024, 64, 1024)  # no smaller size allowed
        1024
    """
    if multiple < 1 or tile < 1:
        raise GridError(f"tile {tile!r} and multiple {multiple!r} must be >= 1")
    core = tile - 2 * overlap
    if core < 1:
        return tile
    n = max(1, -(-length // core))
    need = -(-length // n) + 2 * overlap  # n cores of ceil(length / n)
    need = max(need, 4 * overlap, 1)
    fitted = -(-need // multiple) * multiple
    return min(tile, fitted)


@dataclass(frozen=True, slots=True)
class TileGrid:
    """A :class:`SceneGrid` cut into tiles of ``tile_shape`` with ``overlap`` context.

    Args:
        scene: the grid to cut.
        tile_shape: ``(rows, cols)`` a model sees, or one int for square tiles.
        overlap: pixels of context on each side of a core (``4 * overlap <= tile``, so only neighbours overlap).
        edge: what read windows do at the scene edge.

    Raises:
        GridError: the tile is smaller than four times the overlap.

    .. versionadded:: 0.1
    """

    scene: SceneGrid
    tile_shape: Shape2d | int
    overlap: int = 0
    edge: EdgePolicy = EdgePolicy.SHIFT_INSIDE
    _rows: tuple[tuple[int, int, int, int], ...] = field(
        init=False, repr=False, compare=False
    )
    _cols: tuple[tuple[int, int, int, int], ...] = field(
        init=False, repr=False, compare=False
    )
    token: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate and precompute the per-axis layout."""
        ts = self.tile_shape
        shape = (ts, ts) if isinstance(ts, int) else (int(ts[0]), int(ts[1]))
        object.__setattr__(self, "tile_shape", shape)
        if self.overlap < 0:
            raise GridError(f"overlap must be >= 0, got {self.overlap!r}")
        if min(shape) < max(4 * self.overlap, 1):
            raise GridError(
                f"tile size {shape!r} must be at least four times the overlap "
                f"({self.overlap}); use a larger --tile-size or a smaller --overlap"
            )
        edge = EdgePolicy(self.edge)
        object.__setattr__(self, "edge", edge)
        object.__setattr__(
            self, "_rows", tuple(_axis(self.scene.height, shape[0], self.overlap, edge))
        )
        object.__setattr__(
            self, "_cols", tuple(_axis(self.scene.width, shape[1], self.overlap, edge))
        )
        key = repr(self.__dask_tokenize__()).encode()
        object.__setattr__(self, "token", hashlib.sha256(key).hexdigest()[:12])

    @property
    def shape(self) -> Shape2d:
        """``(tile_rows, tile_cols)``: how many tiles along each axis."""
        return (len(self._rows), len(self._cols))

    @property
    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Core sizes per axis, usable as dask chunks aligned to the grid."""
        return (
            tuple(c1 - c0 for c0, c1, _, _ in self._rows),
            tuple(c1 - c0 for c0, c1, _, _ in self._cols),
        )

    def __len__(self) -> int:
        """Number of tiles."""
        return self.shape[0] * self.shape[1]

    def _tile(self, row: int, col: int) -> Tile:
        rc0, rc1, rr0, rr1 = self._rows[row]
        cc0, cc1, cr0, cr1 = self._cols[col]
        ov = self.overlap
        h, w = self.scene.shape
        x0, x1 = max(0, rc0 - ov), min(h, rc1 + ov)
        y0, y1 = max(0, cc0 - ov), min(w, cc1 + ov)
        return Tile(
            index=(row, col),
            read_window=Window(rr0, cr0, rr1 - rr0, cr1 - cr0),
            core_window=Window(rc0, cc0, rc1 - rc0, cc1 - cc0),
            context_window=Window(x0, y0, x1 - x0, y1 - y0),
            id=f"{self.token}/r{row:05d}c{col:05d}",
            at_border=(rc0 == 0, rc1 == h, cc0 == 0, cc1 == w),
        )

    @overload
    def __getitem__(self, key: int) -> Tile: ...
    @overload
    def __getitem__(self, key: tuple[int, int]) -> Tile: ...
    def __getitem__(self, key: int | tuple[int, int]) -> Tile:
        """``grid[i]`` (row-major position) or ``grid[row, col]``."""
        if isinstance(key, tuple):
            row, col = key
        else:
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"tile index {key} out of range for {n} tiles")
            row, col = divmod(key % n, self.shape[1])
        if not (0 <= row < self.shape[0] and 0 <= col < self.shape[1]):
            raise IndexError(f"tile {(row, col)!r} outside a grid of {self.shape!r}")
        return self._tile(row, col)

    def __iter__(self) -> Iterator[Tile]:
        """Tiles in row-major order."""
        for row in range(self.shape[0]):
            for col in range(self.shape[1]):
                yield self._tile(row, col)

    def shard(self, index: int, count: int) -> list[Tile]:
        """The ``index``-th of ``count`` deterministic, disjoint, contiguous shares.

        Raises:
            GridError: ``index`` is not in ``[0, count)``.
        """
        if count < 1 or not 0 <= index < count:
            raise GridError(f"shard {index}/{count} is invalid: need 0 <= I < N")
        n = len(self)
        lo, hi = index * n // count, (index + 1) * n // count
        return [self[i] for i in range(lo, hi)]

    def tiles_intersecting(self, window: Window) -> list[Tile]:
        """Tiles whose core overlaps a pixel window."""
        return [
            t
            for t in self
            if t.core_window.intersection(window).height
            * t.core_window.intersection(window).width
            > 0
        ]

    def __dask_tokenize__(self) -> Any:
        """Stable dask token (value semantics)."""
        return (
            "TileGrid",
            self.scene.__dask_tokenize__(),
            self.tile_shape,
            self.overlap,
            self.edge.value,
        )

    def to_records(self) -> Sequence[dict[str, Any]]:
        """One plain dict per tile (id, index, windows), for manifests and layers."""
        return [
            {
                "tile_id": t.id,
                "row": t.index[0],
                "col": t.index[1],
                "core": [
                    t.core_window.row_off,
                    t.core_window.col_off,
                    *t.core_window.shape,
                ],
                "read": [
                    t.read_window.row_off,
                    t.read_window.col_off,
                    *t.read_window.shape,
                ],
            }
            for t in self
        ]
