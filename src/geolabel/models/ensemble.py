"""Backend wrappers that measure the model's own uncertainty.

Each wrapper returns the mean class probabilities of several predictions and one extra
per-pixel channel, ``Prediction.extra["uncertainty"]`` of shape ``(1, rows, cols)``: the
mutual information between the prediction and the sample (normalised by ``log C``),
which the pipeline stitches like the probabilities.

* :class:`MCDropoutBackend`: ``T`` passes of a torch model with only its dropout layers
  in train mode (BatchNorm stays in eval), pass ``t`` seeded from ``seed`` and ``t`` for
  every tile alike, so tiles agree at seams and reruns, resumed runs and other batch
  sizes give the same bytes. Channel ``bald``.
* :class:`TTABackend`: the dihedral group (flips and 90° rotations; flips only for
  non-square windows), each undone on the output. Channel ``tta_disagreement``.
* :class:`EnsembleBackend`: the members of an ensemble spec (``backend: ensemble``,
  ``members: [a.yaml, b.yaml]``; same classes and input as the ensemble spec).
  Channel ``ensemble_disagreement``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from geolabel.errors import BackendError, ConfigError, ModelOutputError, ModelSpecError
from geolabel.models.base import Batch, ModelBackend, Prediction
from geolabel.models.registry import load_model
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.uncertainty.measures import mutual_information

__all__ = [
    "EnsembleBackend",
    "MCDropoutBackend",
    "TTABackend",
    "extra_channels",
    "stacked_channels",
    "wrap_backend",
]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
MODEL_UNCERTAINTY = ("none", "mc-dropout", "tta")


def extra_channels(spec: ModelSpec, config: Any) -> tuple[str, ...]:
    """Names of the extra stitched channels a run produces (``()`` for none).

    Raises:
        ConfigError: unknown ``model_uncertainty``, or one combined with an ensemble.
    """
    mode = getattr(config, "model_uncertainty", "none")
    if mode not in MODEL_UNCERTAINTY:
        raise ConfigError(
            f"--model-uncertainty {mode!r} is unknown; choose one of {', '.join(MODEL_UNCERTAINTY)}"
        )
    if spec.backend == "ensemble":
        if mode != "none":
            raise ConfigError(
                f"model {spec.model_id} is an ensemble; --model-uncertainty {mode} does not apply"
            )
        return ("ensemble_disagreement",)
    return {"none": (), "mc-dropout": ("bald",), "tta": ("tta_disagreement",)}[mode]


def wrap_backend(backend: ModelBackend, config: Any) -> ModelBackend:
    """Wrap ``backend`` for the run's ``model_uncertainty`` (unchanged for ``none``)."""
    mode = getattr(config, "model_uncertainty", "none")
    if mode == "mc-dropout":
        return MCDropoutBackend(
            backend,
            passes=int(getattr(config, "mc_passes", 8)),
            seed=int(getattr(config, "seed", 0)),
        )
    if mode == "tta":
        return TTABackend(backend)
    return backend


def stacked_channels(pred: Prediction, channels: int) -> F32:
    """``(channels, rows, cols)``: probabilities, then any extra uncertainty channels.

    Raises:
        ModelOutputError: the prediction's channels do not match the run store's.
    """
    extra = pred.extra.get("uncertainty")
    arr = (
        pred.array
        if extra is None
        else np.concatenate([pred.array, np.asarray(extra, np.float32)])
    )
    if arr.shape[0] != channels:
        raise ModelOutputError(
            f"model {pred.model_id!r}, tile {pred.tile.id}: {arr.shape[0]} output channels "
            f"(probabilities + uncertainty), the run store expects {channels}"
        )
    return arr


def _combine(
    samples: F32, preds: list[Prediction], backend_spec: ModelSpec
) -> list[Prediction]:
    """Mean + mutual information over ``samples`` (T, n, C, rows, cols) per tile."""
    out = []
    for i, p in enumerate(preds):
        s = samples[:, i]
        out.append(
            Prediction(
                tile=p.tile,
                kind="probabilities",
                array=s.mean(axis=0).astype(np.float32),
                num_classes=p.num_classes,
                model_id=backend_spec.model_id,
                extra={"uncertainty": mutual_information(s)[None]},
            )
        )
    return out


class _Wrapper:
    """Shared plumbing: spec, close, context manager."""

    def __init__(self, inner: ModelBackend) -> None:
        self.inner = inner

    @property
    def spec(self) -> ModelSpec:
        """The wrapped model's spec."""
        return self.inner.spec

    def close(self) -> None:
        """Close the wrapped backend."""
        self.inner.close()

    def __enter__(self) -> Self:
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()


class MCDropoutBackend(_Wrapper):
    """Monte-Carlo dropout over a torch backend (``T`` seeded passes).

    Args:
        inner: a backend with a torch ``module`` (``TorchBackend``).
        passes: number of stochastic passes ``T`` (at least 2).
        seed: base seed; pass ``t`` runs with a seed hashed from ``seed`` and ``t``.

    Raises:
        BackendError: the backend has no torch module or the module no dropout layer.
    """

    def __init__(self, inner: ModelBackend, *, passes: int = 8, seed: int = 0) -> None:
        """Find the dropout layers."""
        super().__init__(inner)
        if passes < 2:
            raise ConfigError(f"--mc-passes must be at least 2, got {passes}")
        module = getattr(inner, "module", None)
        if module is None or not hasattr(module, "modules"):
            raise BackendError(
                f"model {inner.spec.model_id}: MC dropout needs a torch backend"
            )
        import torch

        self.dropouts = [
            m
            for m in module.modules()
            if isinstance(m, torch.nn.modules.dropout._DropoutNd)
        ]
        if not self.dropouts or all(m.p == 0 for m in self.dropouts):
            raise BackendError(
                f"model {inner.spec.model_id}: has no dropout layer with p > 0; "
                "MC dropout needs one (use --model-uncertainty tta instead)"
            )
        self.passes, self.seed = passes, seed

    def pass_seed(self, t: int) -> int:
        """The seed of pass ``t``: ``seed`` and ``t``, hashed."""
        key = f"{self.seed}|{t}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (
            2**63 - 1
        )

    def predict(self, batch: Batch) -> list[Prediction]:
        """Mean probabilities of ``T`` dropout passes, plus channel ``bald``.

        Each tile runs alone with the RNG reset to :meth:`pass_seed` for every pass, so
        every tile sees the same ``T`` sub-networks (``Dropout2d`` drops whole channels:
        different draws per tile would show as level steps at tile seams) and a tile's
        result does not depend on its batch.
        """
        import torch

        device = str(getattr(self.inner, "device", "cpu"))
        devices = [torch.device(device)] if device.startswith("cuda") else []
        module = self.inner.module  # type: ignore[attr-defined]
        out: list[Prediction] = []
        try:
            module.eval()  # BatchNorm & co. in inference mode, then only dropout stochastic
            for m in self.dropouts:
                m.train()
            with torch.random.fork_rng(devices=devices):
                for i, tile in enumerate(batch.tiles):
                    one = Batch((tile,), batch.data[i : i + 1], batch.valid[i : i + 1])
                    samples, base = [], None
                    for t in range(self.passes):
                        torch.manual_seed(self.pass_seed(t))
                        pred = self.inner.predict(one)
                        base = base or pred
                        samples.append(pred[0].array)
                    assert base is not None
                    out.extend(_combine(np.stack(samples)[:, None], base, self.spec))
        finally:
            for m in self.dropouts:
                m.eval()
        return out


# (forward on data, undo on outputs) for arrays (..., rows, cols)
_Array = npt.NDArray[Any]
_Transform = tuple[Callable[[_Array], _Array], Callable[[_Array], _Array]]


def _dihedral(square: bool) -> list[_Transform]:
    def ident(a: _Array) -> _Array:
        return a

    flips: list[_Transform] = [
        (ident, ident),
        (lambda a: a[..., ::-1, :], lambda a: a[..., ::-1, :]),
        (lambda a: a[..., :, ::-1], lambda a: a[..., :, ::-1]),
        (lambda a: a[..., ::-1, ::-1], lambda a: a[..., ::-1, ::-1]),
    ]
    if not square:
        return flips
    rots: list[_Transform] = [
        (
            lambda a: np.rot90(a, 1, axes=(-2, -1)),
            lambda a: np.rot90(a, -1, axes=(-2, -1)),
        ),
        (
            lambda a: np.rot90(a, -1, axes=(-2, -1)),
            lambda a: np.rot90(a, 1, axes=(-2, -1)),
        ),
        (lambda a: np.swapaxes(a, -1, -2), lambda a: np.swapaxes(a, -1, -2)),
        (
            lambda a: np.swapaxes(a[..., ::-1, ::-1], -1, -2),
            lambda a: np.swapaxes(a[..., ::-1, ::-1], -1, -2),
        ),
    ]
    return flips + rots


class TTABackend(_Wrapper):
    """Test-time augmentation: flips and 90° rotations, each undone on the output."""

    def predict(self, batch: Batch) -> list[Prediction]:
        """Mean probabilities over the augmentations, plus channel ``tta_disagreement``."""
        shapes = [t.read_window.shape for t in batch.tiles]
        square = all(h == w for h, w in shapes)
        samples = []
        base: list[Prediction] | None = None
        for fwd, undo in _dihedral(square):
            data = np.zeros_like(batch.data)
            valid = np.zeros_like(batch.valid)
            for i, (h, w) in enumerate(shapes):
                data[i, :, :h, :w] = fwd(batch.data[i, :, :h, :w])
                valid[i, :h, :w] = fwd(batch.valid[i, :h, :w])
            preds = self.inner.predict(Batch(batch.tiles, data, valid))
            base = base or preds
            samples.append(
                np.stack([np.ascontiguousarray(undo(p.array)) for p in preds])
            )
        assert base is not None
        return _combine(np.stack(samples), base, self.spec)


class EnsembleBackend:
    """The mean of several models and their disagreement (an ``ensemble`` spec).

    Args:
        spec: a spec with ``backend: ensemble`` and ``members`` (spec paths, relative
            to the ensemble spec).
        **options: execution options passed to every member's backend.

    Raises:
        ModelSpecError: fewer than two members, or members whose classes or input
            differ from the ensemble spec.
    """

    def __init__(self, spec: ModelSpec, **options: Any) -> None:
        """Load every member."""
        members = tuple(getattr(spec, "members", None) or ())
        if len(members) < 2:
            raise ModelSpecError(
                f"{spec.source}: an ensemble needs at least two members, got {len(members)}"
            )
        base = Path(spec.source).parent if spec.source else Path()
        self._spec = spec
        self.members: list[ModelBackend] = []
        try:
            for m in members:
                mspec = load_spec(base / m if not Path(m).is_absolute() else Path(m))
                if mspec.class_names != spec.class_names or mspec.input != spec.input:
                    raise ModelSpecError(
                        f"{spec.source}: member {m} has other classes or input "
                        "than the ensemble spec; they must match"
                    )
                if mspec.backend == "ensemble":
                    raise ModelSpecError(
                        f"{spec.source}: member {m} is itself an ensemble"
                    )
                self.members.append(load_model(mspec, **options))
        except BaseException:
            self.close()
            raise

    @property
    def spec(self) -> ModelSpec:
        """The ensemble spec."""
        return self._spec

    def predict(self, batch: Batch) -> list[Prediction]:
        """Mean member probabilities, plus channel ``ensemble_disagreement``."""
        runs = [m.predict(batch) for m in self.members]
        samples = np.stack([np.stack([p.array for p in preds]) for preds in runs])
        return _combine(samples, runs[0], self._spec)

    def close(self) -> None:
        """Close every member."""
        for m in self.members:
            with contextlib.suppress(Exception):
                m.close()
        self.members = []

    def __enter__(self) -> Self:
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()
