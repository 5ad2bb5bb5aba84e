"""CenterNet decoding and the torch backend's detection / classification outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from geolabel.errors import ModelOutputError
from geolabel.grid import SceneGrid, TileGrid
from geolabel.models.base import Batch
from geolabel.models.detectors import decode_centernet, task_predictions
from geolabel.models.spec import ModelSpec, load_spec
from tests.conftest import requires_torch


def _raw(
    peaks: list[tuple[int, int, int, float, float, float]],
    classes: int = 2,
    g: int = 16,
) -> np.ndarray:
    raw = np.full((classes + 4, g, g), -10.0, np.float32)
    raw[classes + 2 :] = 0.25
    for cls, iy, ix, p, w, h in peaks:
        raw[cls, iy, ix] = math.log(p / (1 - p))
        raw[classes : classes + 2, iy, ix] = (math.log(w / 4), math.log(h / 4))
    return raw


def test_decode_places_boxes_at_peaks() -> None:
    raw = _raw([(0, 3, 5, 0.9, 12.0, 8.0), (1, 10, 2, 0.6, 4.0, 4.0)])
    boxes, scores, labels = decode_centernet(raw, num_classes=2, stride=4)
    assert labels.tolist() == [0, 1]
    np.testing.assert_allclose(scores, [0.9, 0.6], rtol=1e-6)
    cx, cy = (5 + 0.25) * 4, (3 + 0.25) * 4
    np.testing.assert_allclose(boxes[0], [cx - 6, cy - 4, cx + 6, cy + 4], rtol=1e-6)


def test_decode_threshold_topk_and_extent() -> None:
    raw = _raw(
        [
            (0, 3, 5, 0.9, 12.0, 8.0),
            (0, 8, 8, 0.3, 40.0, 40.0),
            (1, 15, 15, 0.8, 8.0, 8.0),
        ]
    )
    b, s, _ = decode_centernet(raw, num_classes=2, stride=4, score_threshold=0.5)
    assert len(b) == 2
    b, s, _ = decode_centernet(raw, num_classes=2, stride=4, max_detections=1)
    assert s.tolist() == pytest.approx([0.9])
    b, s, _ = decode_centernet(raw, num_classes=2, stride=4, extent=(50, 50))
    assert (
        len(b) == 2 and b.max() <= 50 and b.min() >= 0
    )  # the peak at (61, 61) is outside
    with pytest.raises(ModelOutputError, match="CenterNet output"):
        decode_centernet(raw[:3], num_classes=2, stride=4)


def _spec(tmp_path: Path, task: str) -> ModelSpec:
    doc = {
        "name": "t",
        "task": task,
        "backend": "testing",
        "input": {"bands": ["a"], "tile_size": 64},
        "classes": [{"index": 0, "name": "x"}, {"index": 1, "name": "y"}],
        "output": {"activation": "sigmoid" if task == "detection" else "softmax"},
    }
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    return load_spec(p)


def test_task_predictions_validate(tmp_path: Path) -> None:
    grid = TileGrid(SceneGrid((64, 100), (1, 0, 0, 0, -1, 64), None), 64, 8)
    tiles = (grid[0], grid[1])
    batch = Batch(
        tiles, np.zeros((2, 1, 64, 64), np.float32), np.ones((2, 64, 64), bool)
    )
    det = task_predictions(
        np.stack([_raw([(1, 2, 2, 0.9, 8, 8)])] * 2),
        batch,
        _spec(tmp_path, "detection"),
    )
    assert [p.kind for p in det] == ["boxes", "boxes"] and det[0].labels.tolist() == [1]
    cls = task_predictions(
        np.array([[0.0, 1.0], [2.0, 0.0]], np.float32),
        batch,
        _spec(tmp_path, "classification"),
    )
    assert cls[0].kind == "scores" and cls[0].array.sum() == pytest.approx(1.0)
    with pytest.raises(ModelOutputError):
        task_predictions(
            np.zeros((2, 2, 2), np.float32), batch, _spec(tmp_path, "classification")
        )


@requires_torch
def test_torch_backend_returns_boxes(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from geolabel.models.detectors import build_centernet
    from geolabel.models.torch_ import TorchBackend

    torch.manual_seed(0)
    save_file(
        {k: v.contiguous() for k, v in build_centernet(3, 2, 8).state_dict().items()},
        str(tmp_path / "w.safetensors"),
    )
    doc = {
        "name": "cn",
        "task": "detection",
        "backend": "torch",
        "format": "state_dict",
        "weights": "w.safetensors",
        "architecture": {
            "name": "geolabel.centernet",
            "params": {"in_channels": 3, "num_classes": 2, "width": 8},
        },
        "input": {"bands": ["r", "g", "b"], "tile_size": 64},
        "output": {
            "activation": "sigmoid",
            "score_threshold": 0.0,
            "max_detections": 7,
        },
        "classes": [{"index": 0, "name": "a"}, {"index": 1, "name": "b"}],
    }
    (tmp_path / "cn.yaml").write_text(yaml.safe_dump(doc))
    spec = load_spec(tmp_path / "cn.yaml")
    grid = TileGrid(SceneGrid((50, 64), (1, 0, 0, 0, -1, 50), None), 64, 8)
    batch = Batch(
        (grid[0],),
        np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32),
        np.ones((1, 64, 64), bool),
    )
    with TorchBackend(spec, device="cpu") as backend:
        (pred,) = backend.predict(batch)
    assert pred.kind == "boxes" and len(pred.array) == 7
    assert (
        pred.array[:, [1, 3]].max() <= 50 and pred.array[:, [0, 2]].max() <= 64
    )  # clipped to the read window
