"""Overlap blending of class probabilities, split into idempotent per-tile records.

``split_contribution`` turns one tile's probabilities into the weighted sums over its
own core and its halo record; ``gather_core`` adds a core's own sums and its
neighbours' halo pieces (always in the same order, so results are bit-reproducible)
and ``normalise`` divides by the weight. Nodata pixels carry zero weight, so they add
nothing and come out as nodata.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.grid import Tile, TileGrid, tile_weights
from geolabel.stitch._halo import halo_pieces, halo_size, slot_layout

__all__ = [
    "Block",
    "HaloCache",
    "blend_core",
    "class_argmax",
    "gather_core",
    "normalise",
    "split_contribution",
]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Block:
    """One blended core, as finalize's sinks receive it.

    Attributes:
        tile: the tile; the arrays cover ``tile.core_window``.
        probs: ``(C, rows, cols)`` class probabilities (0 where not valid).
        valid: ``(rows, cols)`` pixels with model output.
        classes: ``(rows, cols)`` argmax of ``probs`` (:func:`class_argmax`), computed
            once for every sink that needs it.
        extra: ``(E, rows, cols)`` stitched channels past the classes (model-based
            uncertainty, see ``models/ensemble.py``); ``E`` may be 0.
    """

    tile: Tile
    probs: F32
    valid: npt.NDArray[np.bool_]
    classes: npt.NDArray[np.unsignedinteger[Any]]
    extra: F32


def split_contribution(
    grid: TileGrid,
    tile: Tile,
    probs: F32,
    valid: npt.NDArray[np.bool_],
    dead_zone: float,
) -> tuple[F32, F32]:
    """Weighted sums of one tile over its core and its halo record.

    Args:
        grid: the tile grid.
        tile: the tile.
        probs: ``(C, rows, cols)`` over ``tile.read_window``.
        valid: ``(rows, cols)`` valid-data mask over the read window.
        dead_zone: pixels at faded edges with zero weight (receptive-field radius).

    Returns:
        ``(core (C+1, core_rows, core_cols), halo (C+1, R))``; the last channel is the
        weight.
    """
    ctx = tile.context_window
    sub = ctx.relative_to(tile.read_window)
    w = tile_weights(tile, grid.overlap, dead_zone) * valid[sub.slices]
    c = probs.shape[0]
    weighted = np.empty((c + 1, *ctx.shape), dtype=np.float32)
    np.multiply(probs[(slice(None), *sub.slices)], w, out=weighted[:c])
    weighted[c] = w
    core_rel = tile.core_window.relative_to(ctx)
    core = np.ascontiguousarray(weighted[(slice(None), *core_rel.slices)])
    layout = slot_layout(grid)
    halo = np.zeros((c + 1, max(halo_size(grid), 1)), dtype=np.float32)
    for d, piece in halo_pieces(grid, tile):
        off, (sr, sc) = layout[d]
        rel = piece.relative_to(ctx)
        slot = halo[:, off : off + sr * sc].reshape(c + 1, sr, sc)
        slot[:, : piece.height, : piece.width] = weighted[(slice(None), *rel.slices)]
    return core, halo


class HaloCache:
    """A small LRU of halo records, keyed by flat tile index (safe across threads).

    Records are read outside the lock: two threads that miss the same record both
    read it (the same bytes), and neither waits on the other's read.
    """

    def __init__(self, read: Callable[[int], F32], size: int = 16) -> None:
        """Wrap a reader."""
        self._read = read
        self._size = size
        self._items: OrderedDict[int, F32] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, index: int) -> F32:
        """The record of tile ``index``."""
        with self._lock:
            if index in self._items:
                self._items.move_to_end(index)
                return self._items[index]
        rec = self._read(index)
        self.put(index, rec)
        return rec

    def put(self, index: int, rec: F32) -> None:
        """Keep the record of tile ``index`` (its writer had it in hand)."""
        with self._lock:
            self._items[index] = rec
            self._items.move_to_end(index)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def gather_core(
    grid: TileGrid, tile: Tile, own: F32, halo_of: Callable[[int], F32]
) -> F32:
    """A core's own sums plus every neighbour's halo piece that falls in it.

    The sums are added into ``own`` when it is a writeable float32 array (the store
    reads a fresh one per core), else into a copy.
    """
    writeable = own.dtype == np.float32 and own.flags.writeable
    total = own if writeable else own.astype(np.float32, copy=True)
    layout = slot_layout(grid)
    r, c = tile.index
    ncols = grid.shape[1]
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            nr, nc = r + dr, c + dc
            if (dr, dc) == (0, 0) or not (0 <= nr < grid.shape[0] and 0 <= nc < ncols):
                continue
            neighbour = grid[nr, nc]
            piece = neighbour.context_window.intersection(tile.core_window)
            if not (piece.height and piece.width):
                continue
            off, (sr, sc) = layout[(-dr, -dc)]
            rec = halo_of(nr * ncols + nc)
            slot = rec[:, off : off + sr * sc].reshape(rec.shape[0], sr, sc)
            rel = piece.relative_to(tile.core_window)
            total[(slice(None), *rel.slices)] += slot[:, : piece.height, : piece.width]
    return total


def blend_core(
    grid: TileGrid,
    tile: Tile,
    own: F32,
    num_classes: int,
    halo_of: Callable[[int], F32],
) -> Block:
    """One core's :class:`Block` from its own sums (:func:`gather_core` adds into
    ``own``) and its neighbours' halo records: normalised, with the argmax every sink
    shares."""
    total = gather_core(grid, tile, own, halo_of)
    stacked, valid = normalise(total)
    probs = stacked[:num_classes]
    return Block(tile, probs, valid, class_argmax(probs), stacked[num_classes:])


def normalise(total: F32) -> tuple[F32, npt.NDArray[np.bool_]]:
    """``(probabilities (C, rows, cols), valid (rows, cols))`` from weighted sums."""
    w = total[-1]
    valid = w > 0
    inv = np.zeros_like(w)
    np.divide(np.float32(1.0), w, out=inv, where=valid)
    probs = total[:-1] * inv  # one reciprocal per pixel, not one division per class
    return probs, valid


def class_argmax(
    probs: npt.NDArray[np.floating],
) -> npt.NDArray[np.unsignedinteger[Any]]:
    """``np.argmax(probs, axis=0)`` of ``(C, rows, cols)``: uint8 (``C <= 256``) or uint16.

    One pass per class over contiguous planes (the first maximum wins, as in numpy):
    ~7x faster than numpy's strided reduction along the first axis.
    """
    c_count = probs.shape[0]
    if c_count > 65536:
        raise ValueError(f"{c_count} classes do not fit uint16")
    dtype = np.uint8 if c_count <= 256 else np.uint16
    best = probs[0].copy()
    out = np.zeros(probs.shape[1:], dtype=dtype)
    for c in range(1, c_count):
        better = (probs[c] > best).view(np.uint8).astype(dtype, copy=False)
        # out = c where better, else out: branch-free unsigned arithmetic (wraps exactly)
        out += better * dtype(c) - out * better
        np.maximum(best, probs[c], out=best)
    return out
