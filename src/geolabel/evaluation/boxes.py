"""Box detection metrics: precision, recall and average precision at an IoU threshold.

Matching follows PASCAL VOC: per class, predictions are taken in descending score
order; each is a true positive if its best-overlapping ground-truth box of that class
has IoU >= the threshold and is not matched yet, else a false positive. AP is the area
under the precision-recall curve with all-point interpolation (VOC 2010 onwards):
precision is made monotonically non-increasing from the right and integrated over
the recall steps. Boxes are ``(x0, y0, x1, y1)`` in any one consistent unit (pixels
or CRS units) with ``x0 <= x1`` and ``y0 <= y1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.errors import ConfigError
from geolabel.io.run_record import RUN_RECORD, find_outputs, read_record, resolve_path
from geolabel.stitch.georef import boxes_to_map

__all__ = [
    "BoxMetrics",
    "average_precision",
    "box_evaluator",
    "box_iou",
    "evaluate_boxes",
    "match_boxes",
    "read_reference_boxes",
]

F64 = npt.NDArray[np.float64]


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> F64:
    """Pairwise IoU of ``(n, 4)`` and ``(m, 4)`` boxes; returns ``(n, m)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2])
        - np.maximum(a[:, None, 0], b[None, :, 0]),
        0,
        None,
    )
    iy = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3])
        - np.maximum(a[:, None, 1], b[None, :, 1]),
        0,
        None,
    )
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_boxes(
    pred: npt.ArrayLike,
    scores: npt.ArrayLike,
    truth: npt.ArrayLike,
    *,
    iou_threshold: float = 0.5,
) -> npt.NDArray[np.bool_]:
    """True-positive flags of one class's predictions, in descending-score order.

    Args:
        pred: ``(n, 4)`` predicted boxes.
        scores: ``(n,)`` their scores.
        truth: ``(m, 4)`` ground-truth boxes.
        iou_threshold: lowest IoU of a match.

    Returns:
        ``(n,)`` bools aligned with ``np.argsort(-scores, kind="stable")``.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    iou = box_iou(p[order], truth)
    taken = np.zeros(iou.shape[1], dtype=bool)
    tp = np.zeros(len(order), dtype=bool)
    for i in range(len(order)):
        if iou.shape[1] == 0:
            break
        j = int(np.argmax(iou[i]))
        if iou[i, j] >= iou_threshold and not taken[j]:
            taken[j] = True
            tp[i] = True
    return tp


def average_precision(tp: npt.NDArray[np.bool_], n_truth: int) -> float:
    """All-point interpolated AP from TP flags in descending-score order."""
    if n_truth == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / n_truth
    precision = ctp / np.arange(1, len(tp) + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass(frozen=True, slots=True)
class BoxMetrics:
    """Detection metrics over all classes (and per class in ``per_class``).

    Attributes:
        ap: mean over classes with ground truth of the per-class AP at ``iou_threshold``.
        precision: TP / predictions with score >= ``score_threshold``.
        recall: TP / ground-truth boxes at that score threshold.
        tp, fp, fn: counts at that score threshold.
        n_pred, n_truth: box counts (all scores).
        iou_threshold, score_threshold: the thresholds used.
        per_class: class -> ``{"ap", "precision", "recall", "tp", "fp", "fn", "n_truth"}``.
    """

    ap: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int
    n_pred: int
    n_truth: int
    iou_threshold: float
    score_threshold: float
    per_class: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``ap`` is reported as ``ap50`` at IoU 0.5)."""
        d = asdict(self)
        if self.iou_threshold == 0.5:
            d["ap50"] = self.ap
        return d


def format_box_table(scores: dict[str, Any]) -> str:
    """A readable table of box metrics (``BoxMetrics.to_dict``): per class, then all.

    AP is at the IoU threshold; precision, recall and counts at the score threshold.
    """
    per = scores.get("per_class") or {}
    width = max(8, *(len(str(n)) for n in per)) if per else 8
    head = (
        f"{'class':<{width}}  {'AP':>6}  {'prec':>6}  {'recall':>6}  "
        f"{'tp':>5}  {'fp':>5}  {'fn':>5}  {'truth':>5}"
    )

    def row(name: str, m: dict[str, Any]) -> str:
        return (
            f"{name:<{width}}  {m['ap']:>6.3f}  {m['precision']:>6.3f}  "
            f"{m['recall']:>6.3f}  {m['tp']:>5}  {m['fp']:>5}  {m['fn']:>5}  "
            f"{m['n_truth']:>5}"
        )

    lines = [head, *(row(str(n), m) for n, m in sorted(per.items()))]
    lines.append(row("all", scores))
    lines.append(
        f"AP at IoU {scores['iou_threshold']}; precision, recall and counts at "
        f"score >= {scores['score_threshold']}; {scores['n_pred']} predicted boxes"
    )
    return "\n".join(lines)


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def evaluate_boxes(
    pred_boxes: npt.ArrayLike,
    pred_scores: npt.ArrayLike,
    truth_boxes: npt.ArrayLike,
    *,
    pred_labels: npt.ArrayLike | None = None,
    truth_labels: npt.ArrayLike | None = None,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> BoxMetrics:
    """Precision, recall and AP of predicted boxes against ground truth.

    Args:
        pred_boxes: ``(n, 4)`` predicted ``(x0, y0, x1, y1)``.
        pred_scores: ``(n,)`` scores.
        truth_boxes: ``(m, 4)`` ground-truth boxes in the same unit.
        pred_labels: ``(n,)`` class of each prediction (default: one class).
        truth_labels: ``(m,)`` class of each ground-truth box (default: one class).
        iou_threshold: lowest IoU of a match (0.5 gives AP50).
        score_threshold: predictions counted for precision and recall.

    Returns:
        the metrics; classes are matched separately.

    Raises:
        ValueError: arrays of mismatched lengths, or boxes with ``x1 < x0``/``y1 < y0``.
    """
    pb = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    ps = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    tb = np.asarray(truth_boxes, dtype=np.float64).reshape(-1, 4)
    pl = (
        np.zeros(len(pb), dtype=object)
        if pred_labels is None
        else np.asarray(pred_labels, dtype=object)
    )
    tl = (
        np.zeros(len(tb), dtype=object)
        if truth_labels is None
        else np.asarray(truth_labels, dtype=object)
    )
    if len(ps) != len(pb) or len(pl) != len(pb) or len(tl) != len(tb):
        raise ValueError("boxes, scores and labels must have matching lengths")
    for name, b in (("predicted", pb), ("ground-truth", tb)):
        if len(b) and ((b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any()):
            raise ValueError(f"{name} boxes must have x0 <= x1 and y0 <= y1")
    per_class: dict[str, dict[str, float]] = {}
    tot_tp = tot_fp = tot_fn = 0
    aps = []
    for cls in sorted(set(pl.tolist()) | set(tl.tolist()), key=str):
        pm, tm = pl == cls, tl == cls
        tp_all = match_boxes(pb[pm], ps[pm], tb[tm], iou_threshold=iou_threshold)
        ap = average_precision(tp_all, int(tm.sum()))
        kept = ps[pm] >= score_threshold
        tp_kept = match_boxes(
            pb[pm][kept], ps[pm][kept], tb[tm], iou_threshold=iou_threshold
        )
        tp, fp = int(tp_kept.sum()), int((~tp_kept).sum())
        fn = int(tm.sum()) - tp
        tot_tp, tot_fp, tot_fn = tot_tp + tp, tot_fp + fp, tot_fn + fn
        if tm.any():
            aps.append(ap)
        per_class[str(cls)] = {
            "ap": ap,
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "n_truth": int(tm.sum()),
        }
    return BoxMetrics(
        ap=float(np.mean(aps)) if aps else float("nan"),
        precision=_ratio(tot_tp, tot_tp + tot_fp),
        recall=_ratio(tot_tp, tot_tp + tot_fn),
        tp=tot_tp,
        fp=tot_fp,
        fn=tot_fn,
        n_pred=len(pb),
        n_truth=len(tb),
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        per_class=per_class,
    )


def _detections_gpkg(prediction: Path, scene: str | None) -> Path:
    """The detections GeoPackage of a run folder (or the file itself)."""

    if prediction.is_file():
        return prediction
    if not (prediction / RUN_RECORD).is_file():
        raise ConfigError(
            f"{prediction}: neither a detections .gpkg nor a run folder with {RUN_RECORD}"
        )
    doc = read_record(prediction, error=ConfigError)
    outs = find_outputs(prediction, doc, role="detections", scene=scene)
    if len(outs) != 1:
        raise ConfigError(
            f"{prediction}: {len(outs)} detection outputs match; name one with --scene"
        )
    return outs[0][2]


def read_reference_boxes(
    reference: Path, *, class_field: str = "label", transform: Any | None = None
) -> tuple[F64, npt.NDArray[np.object_]]:
    """Ground-truth boxes in map units, with their labels (lower-cased).

    ``reference`` is a vector file of box polygons (their bounds are used) or a
    DeepForest-style CSV of pixel boxes (``xmin, ymin, xmax, ymax`` and a label
    column), mapped to the CRS with ``transform`` (or the ``image_path`` raster's).

    Raises:
        ConfigError: unreadable file, missing columns, no transform for pixel boxes.
    """
    import pandas as pd

    if reference.suffix.lower() == ".csv":
        try:
            df = pd.read_csv(reference)
        except (OSError, ValueError) as err:
            raise ConfigError(f"{reference}: cannot read box CSV: {err}") from err
        missing = [
            c
            for c in ("xmin", "ymin", "xmax", "ymax", class_field)
            if c not in df.columns
        ]
        if missing:
            raise ConfigError(f"{reference}: box CSV lacks columns {missing}")
        if transform is None:
            if "image_path" not in df.columns:
                raise ConfigError(
                    f"{reference}: pixel boxes need an image_path column or a scene"
                )
            import rasterio

            with rasterio.open(reference.parent / str(df["image_path"].iloc[0])) as ds:
                transform = ds.transform
        boxes = boxes_to_map(
            transform, df[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float64)
        )
        return boxes, df[class_field].astype(str).str.lower().to_numpy(dtype=object)
    import geopandas as gpd

    try:
        gdf = gpd.read_file(reference)
    except Exception as err:  # pyogrio raises several types for unreadable files
        raise ConfigError(f"{reference}: cannot read reference boxes: {err}") from err
    if class_field not in gdf.columns:
        raise ConfigError(f"{reference}: no class field {class_field!r}")
    return (
        np.asarray(gdf.geometry.bounds.to_numpy(), dtype=np.float64),
        gdf[class_field].astype(str).str.lower().to_numpy(dtype=object),
    )


def box_evaluator(prediction: Path, reference: Path, options: Any) -> dict[str, Any]:
    """``geolabel evaluate`` evaluator for reference kind ``boxes``.

    ``prediction`` is a run folder or a ``*_detections.gpkg``; boxes are matched in
    map units by class label (case-insensitive), AP at IoU 0.5, precision and recall
    at score 0.5.

    Raises:
        ConfigError: unreadable inputs.
    """
    import geopandas as gpd
    import rasterio

    gpkg = _detections_gpkg(prediction, getattr(options, "scene", None))
    det = gpd.read_file(gpkg, layer="detections")
    transform = None
    run_dir = gpkg.parent.parent
    if (run_dir / RUN_RECORD).is_file():
        doc = read_record(run_dir, error=ConfigError)
        for rec, _, path in find_outputs(run_dir, doc, role="detections"):
            if path.resolve() == gpkg.resolve():
                with rasterio.open(resolve_path(run_dir, rec)) as ds:
                    transform = ds.transform
    truth, tl = read_reference_boxes(
        reference,
        class_field=getattr(options, "class_field", "label"),
        transform=transform,
    )
    pred = det[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float64)
    pl = det["label"].astype(str).str.lower().to_numpy(dtype=object)
    m = evaluate_boxes(
        pred, det["score"].to_numpy(np.float64), truth, pred_labels=pl, truth_labels=tl
    )
    return {
        "kind": "boxes",
        "prediction": str(gpkg),
        "reference": str(reference),
        **m.to_dict(),
    }
