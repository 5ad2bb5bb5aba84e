"""Polygonise a class mask block by block, merging components across block edges.

Each block is labelled into 4-connected components per class (the same connectivity
GDAL's polygonize uses); components that meet across a block edge with the same class
are joined with a union-find, so a region crossing any number of tiles becomes one
polygon with one id. Memory holds one block, one row of edge labels and the open
(edge-touching) components, never the scene.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from geolabel.grid import Tile, TileGrid

__all__ = ["Component", "vectorize_blocks"]

_FOUR = ndimage.generate_binary_structure(2, 1)


@dataclass(slots=True)
class Component:
    """One connected region of one class (merged across blocks)."""

    class_id: int
    pixels: int
    prob_sum: float
    tile_id: str
    geoms: list[BaseGeometry] = field(default_factory=list)

    @property
    def mean_probability(self) -> float:
        """Mean probability of the class over the region."""
        return self.prob_sum / max(self.pixels, 1)

    def geometry(self) -> BaseGeometry:
        """The region as one (multi)polygon."""
        return self.geoms[0] if len(self.geoms) == 1 else unary_union(self.geoms)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        root = a
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while a != root:
            nxt = self.parent.get(a, a)
            self.parent[a] = root
            a = nxt
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


def _label_block(
    mask: npt.NDArray[np.integer[Any]], nodata: int | None, start: int
) -> tuple[npt.NDArray[np.int64], int]:
    labels = np.zeros(mask.shape, dtype=np.int64)
    nxt = start
    for k in np.unique(mask):
        if nodata is not None and int(k) == nodata:
            continue
        lab, n = ndimage.label(mask == k, structure=_FOUR)
        sel = lab > 0
        labels[sel] = lab[sel] + (nxt - 1)
        nxt += n
    return labels, nxt


def vectorize_blocks(
    grid: TileGrid,
    read_block: Callable[
        [Tile], tuple[npt.NDArray[np.integer[Any]], npt.NDArray[np.float32]]
    ],
    *,
    nodata: int | None,
) -> Iterator[list[Component]]:
    """Yield finished components, a list per block row, then the merged open ones.

    Args:
        grid: blocks are the tile cores.
        read_block: ``tile -> (classes (rows, cols) uint8/uint16, probability of
            the class)``.
        nodata: the mask's nodata value (not vectorised; take it from the file,
            ``src.nodata``); ``None``: every pixel is a class.
    """
    uf = _UnionFind()
    comps: dict[int, Component] = {}
    open_ids: set[int] = set()
    nxt = 1
    above: npt.NDArray[np.int64] = np.zeros(grid.scene.width, dtype=np.int64)
    for row in range(grid.shape[0]):
        below = np.zeros(grid.scene.width, dtype=np.int64)
        left: npt.NDArray[np.int64] | None = None
        done: list[Component] = []
        for col in range(grid.shape[1]):
            tile = grid[row, col]
            win = tile.core_window
            mask, prob = read_block(tile)
            labels, nxt_new = _label_block(mask, nodata, nxt)
            ids = np.arange(nxt, nxt_new)
            if len(ids):
                flat = labels.ravel()
                counts = np.bincount(flat, minlength=nxt_new)[nxt:]
                sums = np.bincount(
                    flat, weights=prob.ravel().astype(np.float64), minlength=nxt_new
                )[nxt:]
                first = ndimage.labeled_comprehension(
                    mask, labels, ids, lambda v: v[0], np.int64, -1
                )
                for i, n, s, k in zip(ids, counts, sums, first, strict=True):
                    comps[int(i)] = Component(int(k), int(n), float(s), tile.id)
                transform = grid.scene.window_transform(win)
                for geom, value in shapes(
                    labels.astype(np.int32),
                    mask=labels > 0,
                    connectivity=4,
                    transform=transform,
                ):
                    comps[int(value)].geoms.append(shape(geom))
            edge = (
                set(labels[0])
                | set(labels[-1])
                | set(labels[:, 0])
                | set(labels[:, -1])
            )
            # join with the block above and the block to the left
            cols = win.slices[1]
            top = above[cols]
            for a, b in {
                (int(x), int(y)) for x, y in zip(top, labels[0], strict=True) if x and y
            }:
                if comps[a].class_id == comps[b].class_id:
                    uf.union(a, b)
            if left is not None:
                for a, b in {
                    (int(x), int(y))
                    for x, y in zip(left, labels[:, 0], strict=True)
                    if x and y
                }:
                    if comps[a].class_id == comps[b].class_id:
                        uf.union(a, b)
            left = labels[:, -1].copy()
            below[cols] = labels[-1]
            for i in ids:
                if int(i) in edge:
                    open_ids.add(int(i))
                else:
                    done.append(comps.pop(int(i)))
            nxt = nxt_new
        above = below
        yield done
    groups: dict[int, list[int]] = {}
    for cid in sorted(open_ids):
        groups.setdefault(uf.find(cid), []).append(cid)
    merged = []
    for root in sorted(groups):
        members = [comps[i] for i in groups[root]]
        head = members[0]
        merged.append(
            Component(
                head.class_id,
                sum(m.pixels for m in members),
                sum(m.prob_sum for m in members),
                head.tile_id,
                [g for m in members for g in m.geoms],
            )
        )
    yield merged
