"""What a query costs a labeller, and what the simulated labeller answers.

The cost model counts what a person does in a GIS for each query unit and converts it
to seconds (every number is an option of ``geolabel simulate``):

* **point** (``points``): one click that sets the class of one pixel:
  ``point_seconds`` (default 3 s). Bearman et al. (ECCV 2016, "What's the point") measured
  22.1 s per PASCAL image for point-level labels against 20.0 s for image-level labels,
  about 2 s for the click itself; we add about 1 s to reach a pixel on a map.
* **superpixel** (``superpixels``): look at one highlighted patch and pick its class:
  ``superpixel_seconds`` (default 4 s: a point click plus a glance at the patch). The
  simulated labeller gives the whole patch the reference's majority class, so the
  reference pixels of other classes inside it become label noise, as in real use.
* **region** (``regions``): go to the square (``query_seconds``, 3 s), fill it with its
  majority class (one polygon: ``polygon_seconds``, 5 s), then draw every patch of
  another class as a polygon: ``polygon_seconds`` + ``vertex_seconds`` (1.5 s) per vertex
  of its outline, simplified with a ``simplify`` px tolerance (Douglas-Peucker). With
  these defaults a 30-vertex outline costs 50 s, inside the 54-79 s per object outline
  reported for polygon tools (Jain & Grauman 2013; COCO, Lin et al. 2014, 79.2 s), which
  count more vertices per object than the 1-px-tolerance outlines of 30 m pixels.

.. versionadded:: 0.2
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
import rasterio.features
import shapely
from shapely.geometry import shape

from geolabel.errors import ConfigError
from geolabel.labels import IGNORE_INDEX
from geolabel.priority.units import UnitMap

__all__ = ["CostModel", "LabellerAnswers", "answers"]

U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class CostModel:
    """Seconds per labeller action (see the module docstring for the sources)."""

    point_seconds: float = 3.0
    superpixel_seconds: float = 4.0
    query_seconds: float = 3.0
    polygon_seconds: float = 5.0
    vertex_seconds: float = 1.5
    simplify: float = 1.0

    def __post_init__(self) -> None:
        """All times must be finite and >= 0."""
        for f in fields(self):
            k, v = f.name, getattr(self, f.name)
            if not (np.isfinite(v) and v >= 0):
                raise ConfigError(
                    f"cost model: {k} must be a finite number >= 0, got {v!r}"
                )


def _vertices(poly: shapely.Polygon) -> int:
    """Vertices a person clicks to draw ``poly`` (every ring, closing point not repeated)."""
    return int(sum(len(r.coords) - 1 for r in (poly.exterior, *poly.interiors)))


def region_cost(oracle: U8, cost: CostModel) -> tuple[float, int, int]:
    """Seconds, polygons and vertices to label one square of the reference densely."""
    lab = oracle != IGNORE_INDEX
    if not lab.any():
        return cost.query_seconds, 0, 0
    major = int(np.bincount(oracle[lab]).argmax())
    other = lab & (oracle != major)
    polygons, vertices = 1, 0
    if other.any():
        for geom, _ in rasterio.features.shapes(oracle, mask=other, connectivity=4):
            g = shape(geom)
            if cost.simplify > 0:
                g = g.simplify(cost.simplify, preserve_topology=True)
            polygons += 1
            vertices += _vertices(g)
    seconds = (
        cost.query_seconds
        + polygons * cost.polygon_seconds
        + vertices * cost.vertex_seconds
    )
    return float(seconds), polygons, vertices


@dataclass(frozen=True, slots=True)
class LabellerAnswers:
    """Per unit: the seconds it costs and the labels the simulated person gives.

    Attributes:
        seconds: ``(count,)`` labeller-seconds per unit.
        polygons: ``(count,)`` polygons drawn per unit (regions; 0 otherwise).
        vertices: ``(count,)`` vertices drawn per unit (regions; 0 otherwise).
        patch_class: ``(count,)`` majority reference class per superpixel (-1 if
            unlabelled; ``None`` for other units).
    """

    seconds: npt.NDArray[np.float64]
    polygons: npt.NDArray[np.int64]
    vertices: npt.NDArray[np.int64]
    patch_class: npt.NDArray[np.int64] | None

    def reveal(self, units: UnitMap, picks: list[int], oracle: U8, labels: U8) -> int:
        """Write the answers for ``picks`` into ``labels``; returns pixels labelled."""
        if not picks:
            return 0
        chosen = np.zeros(units.count + 1, bool)
        chosen[picks] = True
        where = chosen[np.where(units.ids >= 0, units.ids, units.count)]
        if units.kind == "superpixels":
            assert self.patch_class is not None
            value = self.patch_class[np.where(where, units.ids, 0)]
            where &= (value >= 0) & (oracle != IGNORE_INDEX)
            labels[where] = value[where].astype(np.uint8)
        else:
            where &= oracle != IGNORE_INDEX
            labels[where] = oracle[where]
        return int(where.sum())


def answers(units: UnitMap, oracle: U8, cost: CostModel) -> LabellerAnswers:
    """Cost and answer of every unit of ``units`` against the reference ``oracle``."""
    n = units.count
    polys = np.zeros(n, np.int64)
    verts = np.zeros(n, np.int64)
    patch = None
    if units.kind == "points":
        secs = np.full(n, cost.point_seconds)
    elif units.kind == "superpixels":
        secs = np.full(n, cost.superpixel_seconds)
        m = (units.ids >= 0) & (oracle != IGNORE_INDEX)
        k = int(oracle[m].max(initial=0)) + 1
        votes = np.bincount(
            units.ids[m].astype(np.int64) * k + oracle[m], minlength=n * k
        ).reshape(n, k)
        patch = np.where(votes.sum(1) > 0, votes.argmax(1), -1)
    else:
        secs = np.zeros(n)
        rows, cols = np.nonzero(units.ids >= 0)
        ids = units.ids[rows, cols]
        order = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[order], np.arange(n + 1))
        for u in range(n):
            sel = order[bounds[u] : bounds[u + 1]]
            r, c = rows[sel], cols[sel]
            win = np.full(
                (r.max() - r.min() + 1, c.max() - c.min() + 1), IGNORE_INDEX, np.uint8
            )
            win[r - r.min(), c - c.min()] = oracle[r, c]
            secs[u], polys[u], verts[u] = region_cost(win, cost)
    return LabellerAnswers(secs, polys, verts, patch)
