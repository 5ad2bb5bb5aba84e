"""Predict one window of a scene (a Label Studio chip) and turn it into polygons.

The window is cut into cores of ``tile_size - 2 * overlap`` pixels; each core is read
with ``overlap`` pixels of context on every side, the tile shifted inside the scene
at its edges (``predict``'s edge policy), and keeps its own pixels of the model's
answer: every pixel lies at least ``overlap`` pixels from a tile edge or on the scene
edge, so a model whose receptive field fits the overlap gives ``predict``'s classes. Regions are
4-connected pixels of one class (the ``predict`` vectoriser's rule), each with the
mean probability of its class as score. Label Studio polygons have no holes: only
outer rings are sent, larger regions first, so a region lying in another's hole is
drawn over it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage

from geolabel.grid import Window
from geolabel.io.scene import Scene
from geolabel.models.base import activate, normalize
from geolabel.models.spec import ModelSpec

__all__ = ["Region", "predict_window", "regions"]

Infer = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


@dataclass(frozen=True, slots=True)
class Region:
    """One connected region of a class: its outer ring in window pixels ``(col, row)``."""

    class_id: int
    score: float
    pixels: int
    ring: npt.NDArray[np.float64]


def predict_window(
    scene: Scene, window: Window, spec: ModelSpec, infer: Infer
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Class probabilities ``(classes, rows, cols)`` of ``window`` and its valid pixels.

    Raises:
        SceneReadError: the scene cannot be read.
        BackendError: the model fails on a tile.
    """
    t = spec.input.tile_size
    ov = min(spec.default_overlap(), (t - 1) // 2)
    core = t - 2 * ov
    h, w = window.shape
    probs = np.zeros((spec.num_classes, h, w), dtype=np.float32)
    valid = np.zeros((h, w), dtype=bool)
    sh, sw = scene.grid.shape
    with scene.open() as ds:
        for r0 in range(0, h, core):
            for c0 in range(0, w, core):
                # tiles shifted inside the scene where it is large enough (as predict's
                # edge policy): a core at the scene edge sees scene pixels, not padding
                rr, cc = window.row_off + r0, window.col_off + c0
                tr = min(max(rr - ov, 0), max(sh - t, 0)) if sh >= t else rr - ov
                tc = min(max(cc - ov, 0), max(sw - t, 0)) if sw >= t else cc - ov
                read = scene.read(Window(tr, tc, t, t), dataset=ds)
                x = normalize(read.data, read.valid, spec)[None]
                y = activate(infer(x), spec)[0]
                ch, cw = min(core, h - r0), min(core, w - c0)
                dr, dc = rr - tr, cc - tc
                probs[:, r0 : r0 + ch, c0 : c0 + cw] = y[:, dr : dr + ch, dc : dc + cw]
                valid[r0 : r0 + ch, c0 : c0 + cw] = read.valid[
                    dr : dr + ch, dc : dc + cw
                ]
    return probs, valid


def regions(
    probs: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    *,
    min_pixels: int = 1,
) -> list[Region]:
    """4-connected class regions of the argmax of ``probs`` over valid pixels."""
    classes = probs.argmax(axis=0)
    ids = np.zeros(classes.shape, dtype=np.int32)
    n = 0
    for c in np.unique(classes[valid]):  # 4-connected components per class
        comp, k = ndimage.label(valid & (classes == c))
        ids[comp > 0] = comp[comp > 0] + n
        n += int(k)
    if n == 0:
        return []
    chosen = np.take_along_axis(probs, classes[None], axis=0)[0]
    flat = ids.ravel()
    count = np.bincount(flat, minlength=n + 1)
    total = np.bincount(flat, weights=chosen.ravel(), minlength=n + 1)
    cls_of = np.zeros(n + 1, dtype=np.int64)
    cls_of[flat] = classes.ravel()
    out = []
    for geom, value in shapes(
        ids, mask=ids > 0, connectivity=4, transform=Affine.identity()
    ):
        k = int(value)
        if count[k] < min_pixels:
            continue
        ring = np.asarray(geom["coordinates"][0], dtype=np.float64)
        out.append(
            Region(
                class_id=int(cls_of[k]),
                score=float(total[k] / count[k]),
                pixels=int(count[k]),
                ring=ring,
            )
        )
    out.sort(key=lambda r: -r.pixels)  # a region in another's hole comes after it
    return out
