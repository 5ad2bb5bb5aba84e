"""Box metrics: IoU, VOC all-point AP, precision and recall, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from geolabel.evaluation.boxes import (
    average_precision,
    box_iou,
    evaluate_boxes,
    match_boxes,
)

TRUTH = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], float)


def test_iou() -> None:
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[50 / 150, 1.0, 0.0]])


def test_ap_by_hand() -> None:
    # scores: 0.9 TP, 0.8 FP (no overlap), 0.7 TP, 0.6 duplicate of the first truth (FP); one truth missed
    pred = np.array(
        [[0, 0, 10, 10], [60, 60, 70, 70], [20, 0, 30, 10], [1, 0, 11, 10]], float
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    tp = match_boxes(pred, scores, TRUTH)
    assert tp.tolist() == [True, False, True, False]
    # recall 1/3 at precision 1, 2/3 at precision 2/3: AP = 1/3 * 1 + 1/3 * 2/3
    assert average_precision(tp, 3) == pytest.approx(1 / 3 + 2 / 9)
    m = evaluate_boxes(pred, scores, TRUTH, score_threshold=0.75)
    assert m.ap == pytest.approx(1 / 3 + 2 / 9)
    assert (m.tp, m.fp, m.fn) == (1, 1, 2)
    assert m.precision == pytest.approx(0.5) and m.recall == pytest.approx(1 / 3)
    assert m.to_dict()["ap50"] == m.ap


def test_perfect_and_empty() -> None:
    m = evaluate_boxes(TRUTH, [0.9, 0.8, 0.7], TRUTH)
    assert m.ap == 1.0 and m.precision == 1.0 and m.recall == 1.0
    none = evaluate_boxes(np.zeros((0, 4)), [], TRUTH)
    assert none.ap == 0.0 and none.recall == 0.0 and none.fn == 3


def test_iou_threshold_decides() -> None:
    shifted = TRUTH + np.array([4, 0, 4, 0])  # IoU 6/14 = 0.43 with its truth
    assert evaluate_boxes(shifted, [0.9, 0.8, 0.7], TRUTH).ap == 0.0
    assert evaluate_boxes(shifted, [0.9, 0.8, 0.7], TRUTH, iou_threshold=0.4).ap == 1.0


def test_classes_are_matched_separately() -> None:
    m = evaluate_boxes(
        TRUTH,
        [0.9, 0.8, 0.7],
        TRUTH,
        pred_labels=["a", "b", "a"],
        truth_labels=["a", "a", "a"],
    )
    assert m.per_class["a"]["tp"] == 2 and m.per_class["b"]["fp"] == 1
    assert m.per_class["a"]["ap"] == pytest.approx(2 / 3)
    assert m.ap == pytest.approx(
        2 / 3
    )  # class b has no truth, so it does not enter the mean


def test_bad_boxes_are_refused() -> None:
    with pytest.raises(ValueError, match="x0 <= x1"):
        evaluate_boxes([[10, 0, 0, 10]], [0.5], TRUTH)
    with pytest.raises(ValueError, match="matching lengths"):
        evaluate_boxes(TRUTH, [0.5], TRUTH)
