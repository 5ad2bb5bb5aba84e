"""Toy model backends for tests: a translation-equivariant convolution and a failing one.

The ``geolabel.testing`` backend is registered like any other, so CLI tests can point a
YAML spec at it (``backend: testing``, ``architecture: {name: conv, params: ...}``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from scipy import ndimage

from geolabel.errors import BackendError
from geolabel.models.base import Batch, Prediction, activate, to_predictions
from geolabel.models.spec import ModelSpec

__all__ = ["ConvBackend", "FailingBackend", "toy_spec", "write_toy_spec"]


def toy_io(
    *, bands: int, classes: int, tile_size: int, mean: float, std: float
) -> dict[str, Any]:
    """The ``input``, ``output`` and ``classes`` entries of a toy spec (bands ``b1..``)."""
    return {
        "input": {
            "bands": [f"b{i + 1}" for i in range(bands)],
            "tile_size": tile_size,
            "mean": [mean] * bands,
            "std": [std] * bands,
        },
        "output": {"activation": "softmax"},
        "classes": [
            {
                "index": i,
                "name": f"class{i}",
                "color": f"#{(40 * i) % 256:02x}80{(255 - 40 * i) % 256:02x}",
            }
            for i in range(classes)
        ],
    }


def toy_spec(
    *,
    bands: int = 3,
    classes: int = 3,
    tile_size: int = 64,
    kernel: int = 5,
    layers: int = 2,
    seed: int = 0,
    fail_on: list[str] | None = None,
    name: str = "toy-conv",
    mean: float = 100.0,
    std: float = 20.0,
    sleep: float = 0.0,
) -> dict[str, Any]:
    """A spec dict for :class:`ConvBackend` (receptive field ``layers*(kernel-1)+1``).

    ``sleep`` (seconds per batch) slows the model down, so kill tests land mid-run.
    """
    rf = layers * (kernel - 1) + 1
    spec: dict[str, Any] = {
        "name": name,
        "version": "1",
        "task": "segmentation",
        "backend": "testing",
        "architecture": {
            "name": "conv",
            "params": {
                "kernel": kernel,
                "layers": layers,
                "seed": seed,
                "fail_on": fail_on or [],
            },
        },
        **toy_io(bands=bands, classes=classes, tile_size=tile_size, mean=mean, std=std),
        "receptive_field": rf,
        "recommended_overlap": rf,
    }
    if sleep:
        spec["architecture"]["params"]["sleep"] = sleep
    return spec


def write_toy_spec(path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`toy_spec` as YAML."""
    p = Path(path)
    p.write_text(yaml.safe_dump(toy_spec(**kwargs), sort_keys=False))
    return p


class ConvBackend:
    """Stacked zero-padded 2-D convolutions (tanh between layers), then softmax.

    Translation-equivariant away from the edges: whole-image and tiled inference agree
    wherever the receptive field fits inside the read window.
    """

    def __init__(self, spec: ModelSpec, **_: Any) -> None:
        """Draw seeded kernels."""
        assert spec.architecture is not None
        p = dict(spec.architecture.params)
        rng = np.random.default_rng(int(p.get("seed", 0)))
        k, layers = int(p.get("kernel", 5)), int(p.get("layers", 2))
        cin = len(spec.input.bands)
        self.kernels = []
        for i in range(layers):
            cout = spec.num_classes if i == layers - 1 else 4
            self.kernels.append(rng.normal(scale=0.5, size=(cout, cin, k, k)))
            cin = cout
        self.fail_on = set(p.get("fail_on", []))
        self.sleep = float(p.get("sleep", 0.0))
        self._spec = spec
        self.calls = 0

    @property
    def spec(self) -> ModelSpec:
        """The spec."""
        return self._spec

    def forward(self, data: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw logits ``(n, classes, rows, cols)``."""
        x = data.astype(np.float64)
        for li, kern in enumerate(self.kernels):
            out = np.zeros((x.shape[0], kern.shape[0], *x.shape[2:]))
            for o in range(kern.shape[0]):
                for i in range(kern.shape[1]):
                    for n in range(x.shape[0]):
                        out[n, o] += ndimage.correlate(
                            x[n, i], kern[o, i], mode="constant", cval=0.0
                        )
            x = np.tanh(out) if li < len(self.kernels) - 1 else out
        return x.astype(np.float32)

    def predict(self, batch: Batch) -> list[Prediction]:
        """Probabilities per tile; raises for tiles listed in ``fail_on``."""
        self.calls += 1
        if self.sleep:
            time.sleep(self.sleep)
        for t in batch.tiles:
            if t.id.split("/")[-1] in self.fail_on:
                raise BackendError(f"toy model told to fail on tile {t.id}")
        return to_predictions(
            activate(self.forward(batch.data), self._spec), batch, self._spec
        )

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> ConvBackend:
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to release."""


class FailingBackend(ConvBackend):
    """Fails on every batch."""

    def predict(self, batch: Batch) -> list[Prediction]:
        """Always raises :class:`BackendError`."""
        raise BackendError("this toy model always fails")
