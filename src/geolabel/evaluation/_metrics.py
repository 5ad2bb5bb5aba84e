"""Segmentation quality from a confusion matrix: IoU, F1, precision, recall, accuracy.

The confusion matrix has rows = reference (true) class and columns = predicted class.
Pixels whose reference or prediction is the ignore index are not counted. mIoU and
macro F1 average over the classes present in the reference (support > 0), so a class
absent from the reference neither helps nor hurts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.errors import ConfigError
from geolabel.evaluation.boxes import format_box_table
from geolabel.labels import IGNORE_INDEX

__all__ = ["confusion_matrix", "format_table", "segmentation_scores"]


def confusion_matrix(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    num_classes: int,
    *,
    ignore_index: int = IGNORE_INDEX,
) -> npt.NDArray[np.int64]:
    """``(num_classes, num_classes)`` counts, rows = reference, columns = prediction.

    Args:
        pred: predicted class index per pixel (any shape).
        ref: reference class index per pixel (same shape).
        num_classes: number of classes (indexes ``0..num_classes-1``).
        ignore_index: value skipped in either array.

    Raises:
        ConfigError: shapes differ, or a value is neither a class nor ignored.
    """
    p, r = np.asarray(pred).ravel(), np.asarray(ref).ravel()
    if np.asarray(pred).shape != np.asarray(ref).shape:
        raise ConfigError(
            f"prediction {np.shape(pred)} and reference {np.shape(ref)} differ"
        )
    keep = (p != ignore_index) & (r != ignore_index)
    p, r = p[keep].astype(np.int64), r[keep].astype(np.int64)
    for name, a in (("prediction", p), ("reference", r)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ConfigError(
                f"{name} holds class values outside 0..{num_classes - 1} "
                f"(min {a.min()}, max {a.max()}); check the class offset"
            )
    return np.bincount(num_classes * r + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def _ratio(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]
) -> list[float | None]:
    return [None if d == 0 else float(n / d) for n, d in zip(num, den, strict=True)]


def segmentation_scores(
    cm: npt.NDArray[np.int64], class_names: Sequence[str]
) -> dict[str, Any]:
    """Per-class IoU, F1, precision, recall and support; mIoU, macro F1, accuracy.

    Args:
        cm: confusion matrix (rows reference, columns prediction).
        class_names: a name per class index.

    Returns:
        A JSON-able dict: ``overall_accuracy``, ``miou``, ``macro_f1``, ``pixels``,
        ``classes`` (list of per-class dicts; ``None`` where undefined),
        ``confusion_matrix`` (rows reference) and ``class_names``.

    Raises:
        ConfigError: the matrix and the names disagree in size.
    """
    k = cm.shape[0]
    if cm.shape != (k, k) or len(class_names) != k:
        raise ConfigError(
            f"confusion matrix {cm.shape} does not fit {len(class_names)} classes"
        )
    cmf = cm.astype(np.float64)
    tp = np.diag(cmf)
    support, predicted = cmf.sum(axis=1), cmf.sum(axis=0)
    iou = _ratio(tp, support + predicted - tp)
    f1 = _ratio(2 * tp, support + predicted)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    present = [i for i in range(k) if support[i] > 0]
    total = float(cmf.sum())

    def mean(vals: list[float | None]) -> float | None:
        got = [v if (v := vals[i]) is not None else 0.0 for i in present]
        return float(np.mean(got)) if got else None

    return {
        "pixels": int(total),
        "overall_accuracy": float(tp.sum() / total) if total else None,
        "miou": mean(iou),
        "macro_f1": mean(f1),
        "classes": [
            {
                "index": i,
                "name": class_names[i],
                "iou": iou[i],
                "f1": f1[i],
                "precision": precision[i],
                "recall": recall[i],
                "support": int(support[i]),
                "predicted": int(predicted[i]),
            }
            for i in range(k)
        ],
        "class_names": list(class_names),
        "confusion_matrix": cm.astype(int).tolist(),
    }


def _fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def format_table(scores: dict[str, Any]) -> str:
    """A readable table of :func:`segmentation_scores` (per class, then the means).

    Box metrics (``kind: boxes``) get :func:`~geolabel.evaluation.boxes.format_box_table`.
    """
    if scores.get("kind") == "boxes":
        return format_box_table(scores)
    names = scores["class_names"]
    width = max(8, *(len(n) for n in names))
    lines = [
        f"{'class':<{width}}  {'IoU':>6}  {'F1':>6}  {'prec':>6}  {'recall':>6}  "
        f"{'support':>9}"
    ]
    lines.extend(
        f"{c['name']:<{width}}  {_fmt(c['iou'])}  {_fmt(c['f1'])}  "
        f"{_fmt(c['precision'])}  {_fmt(c['recall'])}  {c['support']:>9}"
        for c in scores["classes"]
    )
    lines.append(
        f"{'mean':<{width}}  {_fmt(scores['miou'])}  {_fmt(scores['macro_f1'])}"
    )
    lines.append(
        f"overall accuracy {_fmt(scores['overall_accuracy']).strip()} over "
        f"{scores['pixels']} pixels"
    )
    lines.append("confusion matrix (rows reference, columns prediction):")
    cm = scores["confusion_matrix"]
    cw = max(6, *(len(str(v)) for row in cm for v in row))
    lines.append(" " * width + "  " + " ".join(f"{n[:cw]:>{cw}}" for n in names))
    for n, row in zip(names, cm, strict=True):
        lines.append(f"{n:<{width}}  " + " ".join(f"{v:>{cw}}" for v in row))
    return "\n".join(lines)
