"""``geolabel evaluate``: score a predicted class mask against a reference.

The prediction is a run folder (its ``run.json`` names each scene's ``mask`` COG and
the model's classes) or a mask GeoTIFF (class indexes; its own nodata value, which
follows the bit depth: 3, 15, 255 or 65535 for geolabel masks). The reference kind
decides how it is scored; each kind is one entry of :data:`EVALUATORS`:

* ``raster``: a class raster on the mask's grid (codes + ``class_offset`` = model
  index, its nodata ignored);
* ``vector``: polygons/points with a class field, rasterised onto the mask's grid
  (:func:`geolabel.labels.rasterize_labels`).

Both accumulate one confusion matrix strip by strip (memory bound by the strip), so
the whole mask is never in memory. Other kinds (object boxes) register their own
evaluator with :func:`register_evaluator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.windows import Window as RioWindow

from geolabel.errors import ConfigError, CRSMismatchError
from geolabel.evaluation._metrics import confusion_matrix, segmentation_scores
from geolabel.grid import SceneGrid, Window
from geolabel.io.run_record import RUN_RECORD, find_outputs, read_record
from geolabel.labels import IGNORE_INDEX, class_lookup, rasterize_labels, read_labels

__all__ = [
    "EVALUATORS",
    "EvalOptions",
    "evaluate",
    "reference_kind",
    "register_evaluator",
    "resolve_mask",
]

#: "no class" in the int64 strips compared here (mask nodata, unlabelled reference):
#: a uint16 mask can hold class 255, so the labels' IGNORE_INDEX cannot serve.
NO_CLASS = -1

_RASTER = (".tif", ".tiff", ".vrt", ".img")
_VECTOR = (".gpkg", ".geojson", ".json", ".fgb", ".shp", ".parquet")


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """Options of an evaluation.

    Attributes:
        scene: which scene of a multi-scene run (name or path; default: the only one).
        class_names: class names by index (default: the run's, else ``class_<i>``).
        reference_layer: layer of a vector reference.
        class_field: class field of a vector reference (names or codes).
        class_offset: added to integer reference codes to get model indexes.
        point_buffer: grow reference points to ``(2N+1)^2`` pixel squares.
        strip_rows: rows per block read.
    """

    scene: str | None = None
    class_names: tuple[str, ...] | None = None
    reference_layer: str | None = None
    class_field: str = "label"
    class_offset: int = 0
    point_buffer: int = 0
    strip_rows: int = 512


Evaluator = Callable[[Path, Path, EvalOptions], dict[str, Any]]


def resolve_mask(
    prediction: Path, scene: str | None
) -> tuple[Path, tuple[str, ...] | None]:
    """The mask GeoTIFF of a prediction (run folder or mask file) and its class names.

    Raises:
        ConfigError: no such file, no run.json, no mask for the scene, several scenes
            and none chosen.
    """
    if prediction.is_file():
        with rasterio.open(prediction) as ds:  # finalize tags masks with CLASSES
            tagged = tuple(n for n in ds.tags().get("CLASSES", "").split(",") if n)
        return prediction, tagged or None
    if not (prediction / RUN_RECORD).is_file():
        raise ConfigError(
            f"{prediction}: neither a mask GeoTIFF nor a run folder with {RUN_RECORD}"
        )
    doc = read_record(prediction, error=ConfigError)
    masks = find_outputs(prediction, doc, role="mask", scene=scene)
    run_json = prediction / RUN_RECORD
    if not masks:
        raise ConfigError(
            f"{run_json}: no mask output{f' for scene {scene!r}' if scene else ''}"
        )
    if len(masks) > 1:
        names = [Path(rec).stem for rec, _, _ in masks]
        raise ConfigError(
            f"{run_json}: {len(masks)} scenes {names}; choose one with --scene"
        )
    path = masks[0][2]
    classes = doc.get("model", {}).get("classes")
    return path, tuple(classes) if classes else None


def _strips(grid: SceneGrid, rows: int) -> list[Window]:
    return [
        Window(r, 0, min(rows, grid.height - r), grid.width)
        for r in range(0, grid.height, rows)
    ]


def _score_strips(
    mask: Path,
    names: tuple[str, ...] | None,
    opts: EvalOptions,
    reference: Callable[[SceneGrid, Window], npt.NDArray[np.integer]],
    kind: str,
    ref_path: Path,
) -> dict[str, Any]:
    with rasterio.open(mask) as src:
        grid = SceneGrid(
            src.shape, src.transform, src.crs.to_wkt() if src.crs else None
        )
        nd = None if src.nodata is None else int(src.nodata)
        strips = _strips(grid, opts.strip_rows)

        def read(w: Window) -> npt.NDArray[np.int64]:
            pred = src.read(
                1, window=RioWindow(w.col_off, w.row_off, w.width, w.height)
            ).astype(np.int64)
            return pred if nd is None else np.where(pred == nd, NO_CLASS, pred)

        if names is not None:
            k = len(names)
        else:  # one extra pass for the class count, still one strip at a time
            k = 1 + max(int(p[p != NO_CLASS].max(initial=0)) for p in map(read, strips))
        cm = np.zeros((k, k), dtype=np.int64)
        unpredicted = 0
        span: tuple[int, int] | None = None  # (min, max) labelled reference value
        for w in strips:
            pred = read(w)
            ref = reference(grid, w).astype(np.int64)
            labelled = ref != NO_CLASS
            if not labelled.any():
                continue
            lo, hi = int(ref[labelled].min()), int(ref[labelled].max())
            span = (lo, hi) if span is None else (min(span[0], lo), max(span[1], hi))
            if names is None and hi >= k:
                raise ConfigError(
                    f"{ref_path}: reference class index {hi} but the "
                    f"mask has classes 0-{k - 1}; pass the class names (--model) "
                    "or shift the codes (--class-offset)"
                )
            unpredicted += int((labelled & (pred == NO_CLASS)).sum())
            if span[0] >= 0 and span[1] < k:  # else: scan on for the full range
                cm += confusion_matrix(pred, ref, k, ignore_index=NO_CLASS)
    _check_reference(ref_path, kind, opts, mask, k, span, int(cm.sum()), unpredicted)
    class_names = names or tuple(f"class_{i}" for i in range(k))
    return {
        "prediction": str(mask),
        "reference": str(ref_path),
        "reference_kind": kind,
        **segmentation_scores(cm, class_names),
        "unpredicted_reference_pixels": unpredicted,
    }


def _check_reference(
    ref_path: Path,
    kind: str,
    opts: EvalOptions,
    mask: Path,
    num_classes: int,
    span: tuple[int, int] | None,
    counted: int,
    unpredicted: int,
) -> None:
    """Refuse a reference out of the class range, or one that scores no pixel.

    Raises:
        ConfigError: a labelled value outside ``0..num_classes-1``; no labelled
            reference pixel on the mask; none on a predicted pixel.
    """
    name = str(ref_path)
    if kind == "vector" and opts.reference_layer:
        name += f":{opts.reference_layer}"
    if span is not None and (span[0] < 0 or span[1] >= num_classes):
        raise ConfigError(
            f"{name}: reference holds class values outside 0..{num_classes - 1} "
            f"(min {span[0]}, max {span[1]}); check the class offset (--class-offset)"
        )
    if counted:
        return
    if span is None:
        what = "feature" if kind == "vector" else "labelled pixel"
        raise ConfigError(
            f"{name}: no reference {what} overlaps the prediction {mask}; check "
            "that both cover the same area (and the reference's CRS)"
        )
    raise ConfigError(
        f"{name}: no reference pixel overlaps a predicted pixel of {mask} "
        f"({unpredicted} labelled pixels fall on the mask's nodata)"
    )


def _raster_evaluator(
    prediction: Path, reference: Path, opts: EvalOptions
) -> dict[str, Any]:
    mask, names = resolve_mask(prediction, opts.scene)
    names = opts.class_names or names
    with rasterio.open(reference) as ref:
        ref_nd = ref.nodata

        def read(grid: SceneGrid, w: Window) -> npt.NDArray[np.integer]:
            if (
                ref.shape != grid.shape
                or tuple(ref.transform)[:6] != tuple(grid.transform)[:6]
            ):
                raise CRSMismatchError(
                    f"{reference}: grid {ref.shape} {tuple(ref.transform)[:6]} is not the mask's "
                    f"{grid.shape} {tuple(grid.transform)[:6]}; resample it onto the mask first"
                )
            raw = ref.read(
                1, window=RioWindow(w.col_off, w.row_off, w.width, w.height)
            ).astype(np.int64)
            bad = raw == ref_nd if ref_nd is not None else np.zeros(raw.shape, bool)
            return np.where(bad, NO_CLASS, raw + opts.class_offset)

        return _score_strips(mask, names, opts, read, "raster", reference)


def _vector_evaluator(
    prediction: Path, reference: Path, opts: EvalOptions
) -> dict[str, Any]:
    mask, names = resolve_mask(prediction, opts.scene)
    names = opts.class_names or names
    gdf = read_labels(reference, layer=opts.reference_layer)
    lookup = class_lookup(names) if names else None
    num = len(names) if names else IGNORE_INDEX

    def read(grid: SceneGrid, w: Window) -> npt.NDArray[np.integer]:
        labels = rasterize_labels(
            gdf,
            grid.crop(w),
            num_classes=num,
            class_field=opts.class_field,
            lookup=lookup,
            class_offset=opts.class_offset,
            point_buffer=opts.point_buffer,
            source=str(reference),
        )
        return np.where(labels == IGNORE_INDEX, NO_CLASS, labels.astype(np.int64))

    return _score_strips(mask, names, opts, read, "vector", reference)


#: reference kind -> evaluator ``(prediction, reference, options) -> JSON dict``.
EVALUATORS: dict[str, Evaluator] = {
    "raster": _raster_evaluator,
    "vector": _vector_evaluator,
}
_SUFFIXES: dict[str, str] = {
    **dict.fromkeys(_RASTER, "raster"),
    **dict.fromkeys(_VECTOR, "vector"),
}


def register_evaluator(
    kind: str, evaluator: Evaluator, *, suffixes: tuple[str, ...] = ()
) -> None:
    """Add (or replace) the evaluator of a reference kind, optionally by file suffix."""
    EVALUATORS[kind] = evaluator
    for s in suffixes:
        _SUFFIXES[s.lower()] = kind


def reference_kind(path: Path) -> str:
    """The reference kind a file's suffix implies.

    Raises:
        ConfigError: unknown suffix (pass the kind explicitly).
    """
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{path}: cannot tell the reference kind from {path.suffix!r}; "
            f"choose one of {sorted(EVALUATORS)}"
        )
    return kind


def evaluate(
    prediction: str | Path,
    reference: str | Path,
    *,
    kind: str | None = None,
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Score ``prediction`` against ``reference`` with the evaluator of its kind.

    Args:
        prediction: run folder or mask GeoTIFF.
        reference: reference raster or vector file.
        kind: reference kind (default: from the suffix).
        options: evaluation options.

    Returns:
        The JSON-able scores (see :func:`geolabel.evaluation.segmentation_scores`).

    Raises:
        ConfigError: missing files, unknown kind, classes out of range.
        CRSMismatchError: a raster reference on another grid.

    .. versionadded:: 0.1
    """
    pred, ref = Path(prediction), Path(reference)
    for p, what in ((pred, "prediction"), (ref, "reference")):
        if not p.exists():
            raise ConfigError(f"{p}: {what} not found")
    kind = kind or reference_kind(ref)
    if kind not in EVALUATORS:
        raise ConfigError(
            f"unknown reference kind {kind!r}; choose one of {sorted(EVALUATORS)}"
        )
    return EVALUATORS[kind](pred, ref, options or EvalOptions())
